"""Convert LPIPS's torch weights to the `.npz` that `--config.eval.lpips_weights` names, without torch:

    python -m genimg_jax.tools.convert_lpips --alexnet=alexnet-owt-7be5be79.pth --linear=alex.pth --out=lpips.npz

`--alexnet` is torchvision's ImageNet AlexNet state dict (the one the `lpips` package builds its net from),
`--linear` the package's v0.1 heads (`lpips/weights/v0.1/alex.pth`). Both files are the user's: nothing is
downloaded. See metrics/lpips_weights.py for the mapping.
"""

import argparse
import pickle
import sys
import zipfile
from collections.abc import Sequence

from genimg_jax.cli import run_command
from genimg_jax.config import ConfigError
from genimg_jax.metrics import inception_weights, lpips_weights


def read_torch_file(flag: str, path: str) -> dict:
    """The state dict in `path`; a missing or unreadable file is one line naming the flag and the path."""
    try:
        return inception_weights.read_state_dict(path)
    except (OSError, ValueError, EOFError, KeyError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        raise ConfigError(f"{flag}={path}: not a readable torch state dict ({type(error).__name__}: {error})") from None


def convert(alexnet_path: str, linear_path: str, out_path: str) -> int:
    """Write the `.npz`; returns how many parameters it holds."""
    alexnet = read_torch_file("--alexnet", alexnet_path)
    linear = read_torch_file("--linear", linear_path)
    try:
        arrays = lpips_weights.convert_state_dicts(alexnet, linear)
    except ValueError as error:
        raise ConfigError(f"--alexnet={alexnet_path} --linear={linear_path}: {error}") from None
    lpips_weights.save_lpips_weights(out_path, arrays)
    return sum(array.size for array in arrays.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genimg_jax.tools.convert_lpips", description=__doc__)
    parser.add_argument("--alexnet", required=True, help="torchvision's AlexNet state dict (.pth)")
    parser.add_argument("--linear", required=True, help="the lpips package's v0.1 alex.pth (linear heads)")
    parser.add_argument("--out", required=True, help="the .npz to write")

    def run() -> None:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
        count = convert(args.alexnet, args.linear, args.out)
        print(f"wrote {args.out}: {count} LPIPS (AlexNet, v0.1) parameters")

    return run_command(run)


if __name__ == "__main__":
    sys.exit(main())
