"""Word-level text corpora as a LightningDataModule: token streams held whole in memory, in BPTT layout."""

from __future__ import annotations

from dataclasses import dataclass

import pytorch_lightning as pl
from torch import Tensor

from dish.core.epochs import OncePerEpoch
from dish.core.errors import ConfigError
from dish.data.corpus import Corpus, batchify, embedded_corpus, ptb_corpus, wikitext2_corpus


def python_docs_corpus(data_dir: str, download: bool, min_count: int) -> Corpus:
    """The embedded corpus (no folder, nothing to download), with the readers' signature."""
    return embedded_corpus(min_count)


CORPORA = {"python_docs": python_docs_corpus, "ptb": ptb_corpus, "wikitext2": wikitext2_corpus}
"""Each corpus and its reader ``(data_dir, download, min_count) -> Corpus``."""


@dataclass
class TokenStreams:
    """The data of one Lightning step: the training stream (batch, steps) and the validation stream."""

    train: Tensor
    valid: Tensor


class CorpusDataModule(pl.LightningDataModule):
    """`python_docs` (Python's own help texts, shipped with Python: no file, no network), `ptb` or `wikitext2` (the
    standard Penn Treebank or WikiText-2 files in ``<data_dir>/ptb/`` or ``<data_dir>/wikitext-2/``, downloaded
    only with `download`).

    The training stream is cut into `batch_size` rows and the validation stream into `eval_batch_size` rows;
    each epoch is one item holding both (the module walks their BPTT windows itself).
    """

    def __init__(self, corpus: str = "python_docs", batch_size: int = 32, eval_batch_size: int = 10,
                 min_count: int = 3, data_dir: str = "data", download: bool = False) -> None:
        super().__init__()
        if corpus not in CORPORA:
            raise ConfigError("corpus", f"unknown corpus {corpus!r}", accepted=list(CORPORA))
        for field, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if not (isinstance(value, int) and value > 0):
                raise ConfigError(field, f"must be a positive integer, got {value!r}")
        self.name = corpus
        self.batch_size, self.eval_batch_size, self.min_count = batch_size, eval_batch_size, min_count
        self.data_dir, self.download = data_dir, download
        self.corpus: Corpus | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.corpus is None:
            self.corpus = CORPORA[self.name](self.data_dir, self.download, self.min_count)

    @property
    def vocab_size(self) -> int:
        self.setup()
        assert self.corpus is not None
        return len(self.corpus.vocab)

    def train_dataloader(self) -> OncePerEpoch[TokenStreams]:
        self.setup()
        assert self.corpus is not None
        return OncePerEpoch(TokenStreams(batchify(self.corpus.train, self.batch_size),
                                         batchify(self.corpus.valid, self.eval_batch_size)))
