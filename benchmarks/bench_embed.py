"""Benchmark `llmrec embed` against sentence-transformers, re-embedding, and memory as catalogs grow.

Every text is generated (seeded) from a product vocabulary: short product titles of 5–15 words,
like an online shop's. Each contender runs in a fresh child process, imports not timed.

1. Throughput on 2,000 distinct texts, all-MiniLM-L6-v2 on the CPU, best of 2 after a warm-up:
   sentence-transformers `encode(batch_size=32, normalize_embeddings=True)` in float32, llmrec's
   `Encoder.encode` in float32 and in bfloat16; every bfloat16 row's cosine to llmrec float32
   and every float32 row's cosine to sentence-transformers are checked.
2. Re-embedding: `embed_to_file` (what `llmrec embed` runs, model loaded first, not timed) of
   100,000 items, then again into the same output after 1% of the texts changed; then the whole
   `llmrec embed` command (imports and model loading included) changes them back. Checked: the
   same ids and text hashes, unchanged rows' vectors bit-identical, changed rows' vectors equal
   to encoding their texts directly.
3. Memory: peak RSS of the full 100,000-item run and of a 300,000-item run, extrapolated to 1M.

    .venv/bin/python benchmarks/bench_embed.py [--items 100000] [--large 300000] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, peak_rss_kib, report_child, run_child, target, version

N_THROUGHPUT = 2_000
CHANGED_SHARE = 0.01
WORDS = {
    "adjective": [
        "vintage",
        "red",
        "blue",
        "green",
        "pink",
        "white",
        "black",
        "small",
        "large",
        "mini",
        "giant",
        "retro",
        "rustic",
        "floral",
        "striped",
        "spotty",
        "classic",
        "modern",
        "luxury",
        "wooden",
        "metal",
        "glass",
        "ceramic",
        "paper",
        "cotton",
    ],
    "thing": [
        "candle",
        "holder",
        "mug",
        "bag",
        "lantern",
        "sign",
        "frame",
        "clock",
        "cushion",
        "teapot",
        "tin",
        "box",
        "jar",
        "bowl",
        "plate",
        "garland",
        "bunting",
        "notebook",
        "doormat",
        "apron",
        "umbrella",
        "bottle",
        "basket",
        "lamp",
        "ornament",
    ],
    "detail": [
        "with heart design",
        "set of 3",
        "in gift box",
        "with ribbon",
        "for christmas",
        "hanging",
        "with lid",
        "assorted colours",
        "with bird print",
        "for kitchen",
        "for garden",
        "with fairy lights",
        "jumbo size",
        "with polka dots",
    ],
}


def product_texts(n: int, seed: int) -> list[str]:
    """`n` distinct product titles of 5–15 words."""
    import numpy as np

    rng = np.random.default_rng(seed)
    texts = []
    for i in range(n):
        adjectives = " ".join(rng.choice(WORDS["adjective"], rng.integers(1, 4), replace=False))
        thing, detail = rng.choice(WORDS["thing"]), rng.choice(WORDS["detail"])
        texts.append(f"{adjectives} {thing} {detail} no. {i}")
    return texts


def write_items(path: Path, texts: list[str]) -> None:
    import pandas as pd

    ids = [f"P{i:07d}" for i in range(len(texts))]
    pd.DataFrame({"item_id": ids, "title": texts}).to_csv(path, index=False)


# --------------------------------------------------------------------------- children


def child_throughput(name: str, folder: str) -> None:
    """Encode the throughput texts with one contender; save the vectors for the parent."""
    import numpy as np

    texts = Path(folder, "texts.txt").read_text().splitlines()
    if name == "sentence-transformers":
        from sentence_transformers import SentenceTransformer

        from llmrec.embedding.encoder import bundled_model_path

        model = SentenceTransformer(str(bundled_model_path()), device="cpu")

        def encode(batch):
            return model.encode(batch, batch_size=32, normalize_embeddings=True)
    else:
        from llmrec.embedding.encoder import Encoder

        encoder = Encoder.load(None, device="cpu", dtype=name.split()[-1])

        def encode(batch):
            return encoder.encode(batch, batch_size=64)

    encode(texts[:128])  # warm-up: first calls allocate and pick kernels
    best, vectors = float("inf"), None
    for _ in range(2):
        start = time.perf_counter()
        vectors = encode(texts)
        best = min(best, time.perf_counter() - start)
    np.save(Path(folder, f"{name.replace(' ', '_')}.npy"), np.asarray(vectors, dtype=np.float32))
    report_child({"seconds": best, "items_per_s": len(texts) / best, "rss_kib": peak_rss_kib()})


def child_embed(dtype: str, output: str, *inputs: str) -> None:
    """Embed each input in turn into `output` with one loaded encoder (loading not timed)."""
    from llmrec.embedding.encoder import Encoder
    from llmrec.embedding.run import embed_to_file
    from llmrec.embedding.texts import read_item_texts

    encoder = Encoder.load(None, device="cpu", dtype=dtype)
    loaded_rss = peak_rss_kib()
    runs = []
    for path in inputs:
        start = time.perf_counter()
        run = embed_to_file(read_item_texts(path, template="{title}"), output, encoder)
        runs.append(
            {
                "seconds": time.perf_counter() - start,
                "encoded": run.encoded,
                "reused": run.reused,
                "rss_kib": peak_rss_kib(),
            }
        )
    report_child({"runs": runs, "loaded_rss_kib": loaded_rss})


def run_command(args: list[str]) -> dict:
    """Run a command; return its wall seconds and peak RSS (from wait4, this child alone)."""
    start = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    summary = process.stderr.read().decode().strip()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench_embed: {' '.join(args)} failed:\n{summary}")
    return {"seconds": seconds, "rss_kib": usage.ru_maxrss, "summary": summary.splitlines()[-1]}


def embed_command(items: Path, output: Path, dtype: str) -> list[str]:
    exe = Path(sys.executable).with_name("llmrec")
    return [str(exe), "embed", str(items), "-o", str(output), "--text", "{title}", "--dtype", dtype]


def throughput(folder: Path, seed: int) -> None:
    import numpy as np

    Path(folder, "texts.txt").write_text("\n".join(product_texts(N_THROUGHPUT, seed)))
    names = ["sentence-transformers", "llmrec float32", "llmrec bfloat16"]
    results = {name: run_child(__file__, "throughput", name, str(folder)) for name in names}
    base = results["sentence-transformers"]["items_per_s"]
    print(f"embed {N_THROUGHPUT:,} product texts, all-MiniLM-L6-v2, CPU:")
    for name, result in results.items():
        print(
            f"  {name:24s} {result['items_per_s']:7.0f} items/s  {result['seconds']:6.2f} s  "
            f"peak RSS {result['rss_kib'] / 1024:5.0f} MiB  {result['items_per_s'] / base:4.2f}× "
            "sentence-transformers"
        )
    st, f32, bf16 = (np.load(folder / f"{n.replace(' ', '_')}.npy") for n in names)
    cos_st = float((st * f32).sum(axis=1).min())
    cos_bf16 = float((f32 * bf16).sum(axis=1).min())
    print(
        f"  min cosine: llmrec float32 vs sentence-transformers {cos_st:.6f}; "
        f"bfloat16 vs float32 {cos_bf16:.6f}"
    )
    target(
        "embed float32 ÷ sentence-transformers",
        results["llmrec float32"]["items_per_s"] / base,
        1.0,
        at_most=False,
    )
    target(
        "embed bfloat16 ÷ sentence-transformers float32",
        results["llmrec bfloat16"]["items_per_s"] / base,
        2.5,
        at_most=False,
    )
    target("embed bfloat16 min cosine to float32", cos_bf16, 0.9999, "", at_most=False)


def re_embed(folder: Path, n_items: int, dtype: str, seed: int) -> dict:
    """Full embed of n_items, then again with 1% of texts changed; check and report."""
    import numpy as np

    from llmrec.embedding.encoder import Encoder
    from llmrec.io.vectors import read_vectors

    texts = product_texts(n_items, seed)
    write_items(folder / "items.csv", texts)
    rng = np.random.default_rng(seed + 1)
    changed = np.sort(rng.choice(n_items, int(n_items * CHANGED_SHARE), replace=False))
    for row in changed:
        texts[row] = texts[row].replace(" no. ", " new edition no. ")
    write_items(folder / "changed.csv", texts)
    output = folder / "items.parquet"
    inputs = [str(folder / "items.csv"), str(folder / "changed.csv")]
    result = run_child(__file__, "embed", dtype, str(output), inputs[0])
    before = read_vectors(str(output), "items")
    again = run_child(__file__, "embed", dtype, str(output), inputs[1])["runs"][0]
    command = run_command(embed_command(folder / "items.csv", output, dtype))  # back again
    after_command = read_vectors(str(output), "items")
    full = result["runs"][0]

    # the command put the original texts back: the changed rows were re-encoded from them
    same = np.ones(n_items, dtype=bool)
    same[changed] = False
    problems = []
    if after_command.ids.tolist() != before.ids.tolist():
        problems.append("ids differ")
    if not np.array_equal(after_command.vectors[same], before.vectors[same]):
        problems.append("unchanged rows' vectors differ")
    if after_command.extra["text_hash"].tolist() != before.extra["text_hash"].tolist():
        problems.append("text hashes differ")
    encoder = Encoder.load(None, device="cpu", dtype=dtype)
    direct = encoder.encode([texts[r].replace(" new edition no. ", " no. ") for r in changed])
    cosine = float((direct * after_command.vectors[changed]).sum(axis=1).min())
    if cosine < 0.9999:
        problems.append(f"changed rows' vectors differ from direct encoding (cosine {cosine:.6f})")
    print(f"re-embed {n_items:,} items ({dtype}), {len(changed):,} texts changed (1%):")
    print(
        f"  full embed      {full['seconds']:7.1f} s  (embed_to_file, model loaded; "
        f"{n_items / full['seconds']:.0f} items/s)"
    )
    print(
        f"  re-embed        {again['seconds']:7.1f} s  (embed_to_file: {again['encoded']:,} "
        f"encoded, {again['reused']:,} reused)"
    )
    print(
        f"  re-embed, whole command {command['seconds']:5.1f} s  (imports and model loading "
        f"included) | {command['summary']}"
    )
    status = (
        "same ids and text hashes; unchanged rows bit-identical; changed rows' cosine to "
        f"direct encoding ≥ {cosine:.6f}"
    )
    print(f"  check: {status if not problems else '; '.join(problems)}")
    if problems:
        raise SystemExit("bench_embed: re-embedding gave other rows")
    ratio = full["seconds"] / again["seconds"]
    print(f"  full embed ÷ whole re-embed command: {full['seconds'] / command['seconds']:.1f}×")
    target("re-embed 1% changed: full embed ÷ re-embed", ratio, 30, at_most=False)
    return {"seconds": full["seconds"], "rss_kib": full["rss_kib"]}


def child_read(path: str) -> None:
    """Read an item CSV as embed does (ids, texts, hashes) and nothing else: what a run keeps."""
    from llmrec.embedding.texts import read_item_texts

    items = read_item_texts(path, template="{title}")
    report_child({"rss_kib": peak_rss_kib(), "rows": len(items)})


def first_layers(folder: Path, layers: int) -> Path:
    """The bundled model cut to its first `layers` transformer layers (same tokenizer, same
    384-dimensional output): what a run keeps per item does not depend on the model's depth,
    and the memory runs take a sixth of the time."""
    from transformers import AutoModel, AutoTokenizer

    from llmrec.embedding.encoder import bundled_model_path

    model = AutoModel.from_pretrained(bundled_model_path())
    model.encoder.layer = model.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(bundled_model_path()).save_pretrained(folder)
    return folder


def memory(folder: Path, sizes: list[int], dtype: str, seed: int, layers: int = 0) -> None:
    """Peak RSS of the whole `llmrec embed` command at each catalog size, and how it grows per
    item beyond what reading the items alone takes (their ids and texts, which a run keeps).
    With `layers`, the bundled model is cut to its first layers (see `first_layers`)."""
    model = first_layers(folder / "model", layers) if layers else None
    which = f"the bundled model's first {layers} layer(s)" if layers else "the bundled model"
    print(f"memory of a full embed ({dtype}, {which}), peak RSS of the whole command:", flush=True)
    runs = []
    for n in sizes:
        items, output = folder / f"memory-{n}.csv", folder / f"memory-{n}.parquet"
        write_items(items, product_texts(n, seed + 2))
        command = embed_command(items, output, dtype) + (["--model", str(model)] if model else [])
        run = run_command(command)
        run["read_kib"] = run_child(__file__, "read", str(items))["rss_kib"]
        runs.append(run)
        items.unlink()
        output.unlink()
        print(
            f"  {n:>9,} items  {run['rss_kib'] / 1024:6.0f} MiB  ({run['seconds']:.0f} s; "
            f"reading the items alone {run['read_kib'] / 1024:.0f} MiB)",
            flush=True,
        )
    (n0, first), (n1, last) = (sizes[0], runs[0]), (sizes[-1], runs[-1])
    growth = (last["rss_kib"] - first["rss_kib"]) * 1024 / (n1 - n0)
    kept = (last["read_kib"] - first["read_kib"]) * 1024 / (n1 - n0)
    print(
        f"  growth {n0:,} → {n1:,}: {growth:.0f} bytes per item, of which {kept:.0f} are the ids "
        f"and texts read (a vector alone is 1,536)"
    )
    if n1 >= 1_000_000:
        target(f"embed {n1:,} short texts, peak RSS", last["rss_kib"] / 2**20, 2.0, " GiB")
    target("embed growth per item beyond its id and text", growth - kept, 200, " bytes")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="catalog of the re-embed test")
    parser.add_argument(
        "--memory-sizes",
        default="100000,300000,1000000",
        help="catalog sizes of the memory runs (comma-separated; empty: none)",
    )
    parser.add_argument("--memory-only", action="store_true", help="only the memory runs")
    parser.add_argument(
        "--memory-layers",
        type=int,
        default=1,
        help="memory runs with the bundled model cut to this many layers (0: all six)",
    )
    parser.add_argument("--dtype", default="bfloat16", help="dtype of the re-embed/memory runs")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        children = {"throughput": child_throughput, "embed": child_embed, "read": child_read}
        children[args.child[0]](*args.child[1:])
        return 0
    print(
        f"machine: {machine()}; torch {version('torch')}, transformers {version('transformers')}, "
        f"sentence-transformers {version('sentence-transformers')}"
    )
    with tempfile.TemporaryDirectory(prefix="llmrec-bench-embed-") as tmp:
        folder = Path(tmp)
        if not args.memory_only:
            throughput(folder, args.seed)
            re_embed(folder, args.items, args.dtype, args.seed)
        sizes = [int(n) for n in args.memory_sizes.split(",") if n]
        if sizes:
            memory(folder, sizes, args.dtype, args.seed, args.memory_layers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
