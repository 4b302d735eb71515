"""Copy the pinned three.js build, the example modules the viewer uses and the
Draco decoder (glTF build: WebAssembly, and plain JS for browsers without it)
into static/vendor/three/.

Run after `npm ci` (package.json pins the exact version; package-lock.json its
checksum). The example modules import the bare name 'three'; it is rewritten to
a relative path so the browser needs no import map and nothing comes from a CDN.
"""

import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "node_modules" / "three"
DEST = ROOT / "static" / "vendor" / "three"
BUILD = ["build/three.module.js", "build/three.core.js"]
EXAMPLES = [
    "examples/jsm/controls/OrbitControls.js",
    "examples/jsm/loaders/DRACOLoader.js",
    "examples/jsm/loaders/GLTFLoader.js",
    "examples/jsm/loaders/PLYLoader.js",
    "examples/jsm/utils/BufferGeometryUtils.js",
    "examples/jsm/utils/SkeletonUtils.js",
]
# Copied byte for byte: the decoder the DRACOLoader fetches from draco_path.
DRACO = [
    "examples/jsm/libs/draco/README.md",
    "examples/jsm/libs/draco/gltf/draco_decoder.js",
    "examples/jsm/libs/draco/gltf/draco_decoder.wasm",
    "examples/jsm/libs/draco/gltf/draco_wasm_wrapper.js",
]
_BARE = re.compile(r"""(from\s+)(['"])three\2""")


def main() -> int:
    if not (SOURCE / "package.json").is_file():
        print("node_modules/three is missing: run `npm ci` first.", file=sys.stderr)
        return 1
    version = json.loads((SOURCE / "package.json").read_text())["version"]
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]["three"]
    if version != pinned:
        print(
            f"node_modules has three {version}, package.json pins {pinned}: run `npm "
            "ci`.",
            file=sys.stderr,
        )
        return 1
    if DEST.exists():
        shutil.rmtree(DEST)
    for rel in BUILD:
        target = DEST / Path(rel).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SOURCE / rel, target)
    for rel in EXAMPLES:
        target = DEST / Path(rel).relative_to("examples")
        target.parent.mkdir(parents=True, exist_ok=True)
        depth = len(target.relative_to(DEST).parts) - 1
        text = (SOURCE / rel).read_text(encoding="utf-8")
        text = _BARE.sub(
            lambda m, depth=depth: (
                f"{m.group(1)}{m.group(2)}{'../' * depth}three.module.js{m.group(2)}"
            ),
            text,
        )
        target.write_text(text, encoding="utf-8")
    for rel in DRACO:
        target = DEST / Path(rel).relative_to("examples")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SOURCE / rel, target)
    shutil.copyfile(SOURCE / "LICENSE", DEST / "LICENSE")
    (DEST / "VERSION").write_text(f"{version}\n")
    print(f"three.js {version} -> {DEST.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
