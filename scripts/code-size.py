#!/usr/bin/env python3
"""Lines per module (Sources/<target>) and the largest types, for review notes.

A type's size is the lines of its top-level declaration plus its top-level extensions
(anywhere in Sources/), counted up to the next top-level declaration.
Usage: scripts/code-size.py [ROOT]
"""
import os, re, sys
from collections import defaultdict

root = sys.argv[1] if len(sys.argv) > 1 else "."
src = os.path.join(root, "Sources")
decl = re.compile(r"^(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|internal|package|private|fileprivate|final|open|nonisolated|indirect)\s+)*"
                  r"(class|struct|enum|actor|protocol|extension)\s+([A-Za-z_][\w.]*)")
top = re.compile(r"^(?:@|public |internal |package |private |fileprivate |final |func |let |var |class |struct |enum |actor |protocol |extension |typealias |import |#if|#endif)")
modules = defaultdict(int)
types = defaultdict(int)
for module in sorted(os.listdir(src)):
    for dirpath, _, files in os.walk(os.path.join(src, module)):
        for name in files:
            if not name.endswith(".swift"):
                continue
            lines = open(os.path.join(dirpath, name), encoding="utf-8").read().splitlines()
            modules[module] += len(lines)
            current = None
            for line in lines:
                m = decl.match(line)
                if m:
                    current = f"{module}.{m.group(2).split('.')[0]}"
                elif top.match(line):
                    current = None
                if current:
                    types[current] += 1
print("lines per module")
for module, n in sorted(modules.items(), key=lambda kv: -kv[1]):
    print(f"  {module:28} {n:6}")
print(f"  {'total':28} {sum(modules.values()):6}")
print("largest types (declaration + extensions)")
for t, n in sorted(types.items(), key=lambda kv: -kv[1])[:8]:
    print(f"  {t:48} {n:6}")
