"""Copy the stand-ins' training text into their card folders, compressed, for helpers.provenance.

    python -m training.build_corpus build          # writes build/corpus/ (see training/README.md)
    python -m training.ship_training_data          # writes helpers/standins/*/training_data.txt.xz

Each file holds the training samples of one stand-in exactly as `train_standin` read them, one per line
(`[CLS]paragraph` for the base model, `[CLS]turn1[SEP]turn2[SEP]...` for the chat model), so a learner can
check whether a sentence a stand-in writes was learned verbatim. xz keeps them small (about 1.2 MB and
0.13 MB); read one with `lzma.open(path, "rt", encoding="utf-8")` or `xz -dc`.
"""

from __future__ import annotations

import argparse
import lzma
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
STANDINS = REPO_ROOT / "helpers" / "standins"
DEFAULT_CORPUS = REPO_ROOT / "build" / "corpus"
FILE_NAME = "training_data.txt.xz"
SOURCES = {"gpt2-chinese-base": "base_train.txt", "gpt2-chinese-chat": "chat_train.txt"}


def ship(corpus: Path = DEFAULT_CORPUS, standins: Path = STANDINS) -> dict[str, int]:
    """Compress each stand-in's training file into its folder; return the bytes written per folder."""
    sizes = {}
    for folder, source in SOURCES.items():
        text = (corpus / source).read_text(encoding="utf-8")
        data = lzma.compress(text.encode("utf-8"), preset=9 | lzma.PRESET_EXTREME)
        target = standins / folder / FILE_NAME
        target.write_bytes(data)
        sizes[folder] = len(data)
        print(f"{target}: {text.count(chr(10))} lines, {len(data)} bytes")
    return sizes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder written by build_corpus")
    ship(parser.parse_args(argv).corpus)


if __name__ == "__main__":
    main()
