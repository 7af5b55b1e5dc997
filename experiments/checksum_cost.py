"""What the checkpoint checksums cost: save and restore times of one state with the share spent on checksums.

    python -m experiments.checksum_cost [--megabytes=16,128]

Saves a float32 state of each size with `Checkpointer` (the SHA-256 of its files is written before the commit),
restores it (the files are verified first), and times the checksum functions alone on the same files.
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import time

import jax

from genimg_jax.training import checksums
from genimg_jax.training.checkpoint import ITEMS, Checkpointer


def measure(megabytes: int, directory: pathlib.Path) -> dict[str, float]:
    state = {"w": jax.random.normal(jax.random.PRNGKey(0), (megabytes * 2**18,))}
    target = jax.eval_shape(lambda: state)
    checkpointer = Checkpointer(directory, keep=2, every=1)
    begin = time.perf_counter()
    checkpointer.save(1, state, {"step": 1})
    checkpointer.wait()
    saved = time.perf_counter()
    jax.block_until_ready(checkpointer.restore(1, target))
    restored = time.perf_counter()
    checkpointer.close()
    folder = directory / "1"
    write_begin = time.perf_counter()
    checksums.write_manifest(folder, ITEMS)
    verify_begin = time.perf_counter()
    assert checksums.find_damage(folder) is None
    verify_end = time.perf_counter()
    return {
        "save_s": saved - begin,
        "restore_s": restored - saved,
        "write_checksums_s": verify_begin - write_begin,
        "verify_checksums_s": verify_end - verify_begin,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", default="16,128", help="comma list of state sizes")
    args = parser.parse_args()
    for megabytes in map(int, args.megabytes.split(",")):
        with tempfile.TemporaryDirectory() as directory:
            m = measure(megabytes, pathlib.Path(directory))
        print(
            f"{megabytes} MB: save {m['save_s']:.3f} s (checksums {m['write_checksums_s']:.3f} s, "
            f"{100 * m['write_checksums_s'] / m['save_s']:.0f}%), restore {m['restore_s']:.3f} s (verify "
            f"{m['verify_checksums_s']:.3f} s, {100 * m['verify_checksums_s'] / m['restore_s']:.0f}%), "
            f"{megabytes / m['verify_checksums_s']:.0f} MB/s hashed"
        )


if __name__ == "__main__":
    main()
