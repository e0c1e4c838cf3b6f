"""Corpus sources, the hash split and BOS-led packing (tiny tokenizer; the built-in corpus on a few
standard-library files so the test stays fast)."""

from __future__ import annotations

import json
import random
import sys

import pytest
import torch

from mechscope.data import builtin
from mechscope.data.corpus import CorpusConfig, corpus_batches, corpus_contexts, load_documents
from mechscope.data.documents import CorpusError, Document, dedupe, is_heldout, split
from mechscope.data.files import expand, read_files
from mechscope.data.packing import BATCH_DOCS, iter_context_batches, iter_contexts, pack
from tests.tiny import tiny_tokenizer

FEW = ("json/__init__.py", "queue.py", "textwrap.py", "fractions.py")


@pytest.fixture
def few_stdlib(monkeypatch, tmp_path):
    """The built-in corpus restricted to a few standard-library files, cached under a temporary home."""
    monkeypatch.setenv("MECHSCOPE_HOME", str(tmp_path / "home"))
    root = builtin.stdlib_root()
    monkeypatch.setattr(builtin, "stdlib_files", lambda r=None: [root / f for f in FEW])
    return root


def test_builtin_corpus_is_deterministic_deduplicated_and_cached(few_stdlib):
    first = builtin.assemble(progress=False)
    assert first == builtin.assemble(progress=False)  # same Python, same corpus, same order
    sources = [d.source for d in first]
    assert sources[0].startswith("pydoc:") and any(s.startswith("stdlib:queue.py:") for s in sources)
    assert len({d.digest for d in first}) == len(first)
    assert all(len(d.text) >= builtin.MIN_CHARS for d in first)
    loaded = builtin.load_builtin(progress=False)
    assert loaded == first
    manifest = json.loads((builtin.cache_dir() / builtin.MANIFEST_FILE).read_text())
    assert manifest["documents"] == len(first) and manifest["python"] == sys.version.split()[0]
    assert builtin.load_builtin(progress=False) == first  # from the cache now
    (builtin.cache_dir() / builtin.DOCS_FILE).write_text('{"text": "tampered", "source": "x"}\n')
    assert builtin.load_builtin(progress=False) == first  # checksum mismatch: rebuilt


def test_stdlib_walk_skips_tests_and_site_packages():
    files = builtin.stdlib_files()
    rel = [f.relative_to(builtin.stdlib_root()).as_posix() for f in files]
    assert rel == sorted(rel) and "json/__init__.py" in rel
    assert not any(part in builtin.EXCLUDED_DIRS for r in rel for part in r.split("/")[:-1])
    assert not any(r.split("/")[-1].startswith("test") for r in rel)


def test_dedupe_and_split():
    docs = [Document(f"document number {i} " * 5, f"t:{i}") for i in range(400)]
    assert dedupe(docs + [Document("document  number 3 " * 5, "dup")]) == docs  # whitespace-normalised
    train, held = split(docs, "train", 0.1), split(docs, "heldout", 0.1)
    assert len(train) + len(held) == 400 and not {d.digest for d in train} & {d.digest for d in held}
    assert 20 <= len(held) <= 60  # about 10 %
    assert split(docs[:200], "heldout", 0.1) == [d for d in held if d in docs[:200]]  # stable under additions
    assert all(is_heldout(d, 0.1) for d in held)


def test_packing_starts_every_context_with_bos():
    tok = tiny_tokenizer()
    docs = [Document("The capital of France is Paris. " * 3, "a"), Document("Sparse autoencoders find features. " * 4, "b")]
    ctx = pack(tok, docs, seq_len=12)
    assert ctx.shape[1] == 12 and (ctx[:, 0] == tok.bos_token_id).all()
    stream = ctx[:, 1:].reshape(-1).tolist()
    a = tok(docs[0].text, add_special_tokens=False)["input_ids"]
    b = tok(docs[1].text, add_special_tokens=False)["input_ids"]
    expected = (a + [tok.eos_token_id] + b + [tok.eos_token_id])[: len(stream)]
    assert stream == expected and len(stream) == (len(a) + len(b) + 2) // 11 * 11
    assert pack(tok, docs, seq_len=12, max_tokens=24).shape == (2, 12)
    with pytest.raises(CorpusError, match="fewer than"):
        pack(tok, [Document("hi", "c")], seq_len=64)


def test_local_files_globs_and_directories(tmp_path):
    (tmp_path / "a.txt").write_text("First text file.\nTwo lines.")
    (tmp_path / "b.jsonl").write_text('{"text": "line one"}\n\n{"text": "line two", "x": 1}\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("Nested.")
    (tmp_path / "skip.csv").write_text("ignored")
    assert [p.name for p in expand(str(tmp_path))] == ["a.txt", "b.jsonl", "c.txt"]
    assert [p.name for p in expand(str(tmp_path / "*.jsonl"))] == ["b.jsonl"]
    docs = read_files([str(tmp_path / "**" / "*.txt"), str(tmp_path / "b.jsonl")])
    assert [d.text for d in docs] == ["First text file.\nTwo lines.", "Nested.", "line one", "line two"]
    assert docs[2].source.endswith("b.jsonl:1") and docs[3].source.endswith("b.jsonl:3")
    assert load_documents([str(tmp_path / "a.txt"), str(tmp_path / "a.txt")], progress=False)[0].text.startswith("First")


def test_file_errors_are_one_line(tmp_path, monkeypatch):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(CorpusError, match=r"bad.jsonl:2 is not valid JSON"):
        read_files([str(bad)])
    bad.write_text('{"body": "no text"}\n')
    with pytest.raises(CorpusError, match=r"bad.jsonl:1 has no string field 'text'"):
        read_files([str(bad)])
    with pytest.raises(CorpusError, match="no .txt/.jsonl/.parquet file matches"):
        expand(str(tmp_path / "*.nothing"))
    with pytest.raises(CorpusError, match="no such corpus file or directory"):
        expand(str(tmp_path / "missing.txt"))
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as on a machine without pyarrow
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(CorpusError, match="needs pyarrow, which is not installed") as e:
        read_files([str(tmp_path / "x.parquet")])
    assert "\n" not in str(e.value)


def test_corpus_config_and_splits_on_files(tmp_path):
    lines = [json.dumps({"text": f"Paragraph {i}: the capital of France is Paris, reliably."}) for i in range(300)]
    (tmp_path / "c.jsonl").write_text("\n".join(lines))
    cfg = CorpusConfig(sources=str(tmp_path / "c.jsonl"), seq_len=16, heldout_fraction=0.2)
    assert cfg.sources == (str(tmp_path / "c.jsonl"),)
    tok = tiny_tokenizer()
    train, held = corpus_contexts(tok, cfg, "train", progress=False), corpus_contexts(tok, cfg, "heldout", progress=False)
    assert train.shape[1] == held.shape[1] == 16 and train.shape[0] > 3 * held.shape[0] > 0
    assert torch.equal(train, corpus_contexts(tok, cfg, "train", progress=False))
    one = CorpusConfig(sources=(str(tmp_path / "c.jsonl"),), heldout_fraction=0.001)
    with pytest.raises(CorpusError, match="falls in the heldout split"):
        corpus_contexts(tok, CorpusConfig(sources=str(tmp_path / "c.jsonl"), heldout_fraction=1e-9), "heldout")
    assert one.to_dict()["sources"] == [str(tmp_path / "c.jsonl")]
    for bad in ({"seq_len": 1}, {"heldout_fraction": 0.0}, {"sources": ()}):
        with pytest.raises(CorpusError):
            CorpusConfig(**bad)


def test_builtin_cache_never_replaces_a_folder_holding_other_files(few_stdlib):
    first = builtin.load_builtin(progress=False)
    where = builtin.cache_dir()
    (where / "mechscope.json").unlink()  # a cache from before the marker is still ours: rebuilt in place
    (where / builtin.DOCS_FILE).write_text("garbage\n")
    assert builtin.load_builtin(progress=False) == first
    assert (where / "mechscope.json").is_file()
    (where / builtin.DOCS_FILE).write_text("garbage\n")
    (where / "notes.txt").write_text("mine")  # someone's file: used uncached, nothing deleted
    assert builtin.load_builtin(progress=False) == first
    assert (where / "notes.txt").read_text() == "mine" and (where / builtin.DOCS_FILE).read_text() == "garbage\n"


def _old_pack(tokenizer, docs, seq_len, max_tokens=None):
    """The eager packing this module had before it streamed (the reference)."""
    from mechscope.data.packing import token_stream

    bos = tokenizer.bos_token_id
    body = seq_len - 1 if bos is not None else seq_len
    limit = None if max_tokens is None else max(1, max_tokens // seq_len)
    contexts, buffer = [], []
    for ids in token_stream(tokenizer, docs):
        buffer.extend(ids)
        while len(buffer) >= body:
            window, buffer = buffer[:body], buffer[body:]
            contexts.append(([bos] if bos is not None else []) + window)
            if limit is not None and len(contexts) >= limit:
                return torch.tensor(contexts, dtype=torch.long)
    return torch.tensor(contexts, dtype=torch.long)


def _docs(n, rng):
    words = ["the", "capital", "of", "France", "is", "Paris", "sparse", "features", "\n", "tokens"]
    return [Document(" ".join(rng.choice(words) for _ in range(rng.randint(1, 400))), f"d{i}") for i in range(n)]


@pytest.mark.parametrize("seq_len,max_tokens", [(2, None), (12, None), (64, None), (33, 500), (16, 16), (16, 5)])
def test_streamed_packing_equals_the_eager_result(seq_len, max_tokens):
    tok = tiny_tokenizer()
    docs = _docs(300, random.Random(seq_len))
    want = _old_pack(tok, docs, seq_len, max_tokens)
    assert torch.equal(pack(tok, docs, seq_len, max_tokens), want)
    assert torch.equal(pack(tok, iter(docs), seq_len, max_tokens), want)  # a one-shot iterator works too
    batches = list(iter_context_batches(tok, (d for d in docs), seq_len, batch_size=7, max_tokens=max_tokens))
    assert all(b.shape[0] == 7 for b in batches[:-1]) and torch.equal(torch.cat(batches), want)
    assert [c for c in iter_contexts(tok, docs, seq_len, max_tokens)] == want.tolist()


def test_packing_reads_documents_lazily_and_stops_at_max_tokens():
    tok = tiny_tokenizer()
    pulled = 0

    def endless():
        nonlocal pulled
        while True:
            pulled += 1
            yield Document("The capital of France is Paris. " * 20, f"d{pulled}")

    contexts = iter_contexts(tok, endless(), seq_len=32)
    first = [next(contexts) for _ in range(3)]
    assert len(first) == 3 and pulled <= BATCH_DOCS  # one tokeniser batch, not the whole (endless) corpus
    pulled = 0
    ctx = pack(tok, endless(), seq_len=32, max_tokens=32 * 1000)
    assert ctx.shape == (1000, 32) and pulled <= 2 * BATCH_DOCS
    with pytest.raises(CorpusError, match="fewer than"):
        list(iter_contexts(tok, iter([Document("hi", "c")]), seq_len=64))
    with pytest.raises(CorpusError, match="seq_len"):
        next(iter_contexts(tok, endless(), seq_len=1))


def test_corpus_batches_stream_the_same_contexts(tmp_path):
    lines = [json.dumps({"text": f"Document number {i} talks about topic {i % 7} at some length. " * 3}) for i in range(400)]
    (tmp_path / "a.jsonl").write_text("\n".join(lines + lines[:50]))  # duplicates are dropped in the stream too
    cfg = CorpusConfig(sources=(str(tmp_path / "a.jsonl"),), seq_len=24)
    tok = tiny_tokenizer()
    for which in ("train", "heldout", "all"):
        want = corpus_contexts(tok, cfg, which, max_tokens=24 * 50, progress=False)
        got = torch.cat(list(corpus_batches(tok, cfg, which, batch_size=8, max_tokens=24 * 50, progress=False)))
        assert torch.equal(got, want)
    with pytest.raises(CorpusError, match="no such corpus file"):
        next(corpus_batches(tok, CorpusConfig(sources=(str(tmp_path / "missing.txt"),)), progress=False))
