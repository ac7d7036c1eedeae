#!/usr/bin/env python3
"""Wraps what swift-format leaves longer than the limit: `//` comments and one-line string
literals (turned into multi-line literals with line continuations, so the string is the same).
Usage: scripts/wrap-long-lines.py [--limit 140] FILE...   (then run `swift format -i` again)"""
import re, sys

LIMIT = 140
args = sys.argv[1:]
if args[:1] == ["--limit"]:
    LIMIT = int(args[1]); args = args[2:]

def literal_end(s, i):
    """s[i] == '"' opens a one-line literal; returns the index of its closing quote, or None."""
    j = i + 1
    while j < len(s):
        c = s[j]
        if c == '\\':
            if j + 1 < len(s) and s[j + 1] == '(':
                depth, k = 1, j + 2
                while k < len(s) and depth:
                    if s[k] == '(':
                        depth += 1
                    elif s[k] == ')':
                        depth -= 1
                    elif s[k] == '"':
                        e = literal_end(s, k)
                        if e is None: return None
                        k = e
                    k += 1
                j = k
                continue
            j += 2
            continue
        if c == '"':
            return j
        j += 1
    return None

def split_points(content):
    """Indices after a space outside interpolations."""
    points, depth, j = [], 0, 0
    while j < len(content):
        c = content[j]
        if c == '\\' and j + 1 < len(content):
            if content[j + 1] == '(':
                depth += 1; j += 2; continue
            j += 2; continue
        if depth and c == '(':
            depth += 1
        elif depth and c == ')':
            depth -= 1
        elif depth == 0 and c == ' ':
            points.append(j + 1)
        j += 1
    return points

def wrap_literal(line):
    indent = re.match(r'\s*', line).group(0)
    i = 0
    while True:
        i = line.find('"', i)
        if i < 0: return None
        if line.startswith('"""', i) or (i > 0 and line[i - 1] in '#\\'): return None
        e = literal_end(line, i)
        if e is None: return None
        if e >= LIMIT - 5 or len(line) > LIMIT and e + 1 >= len(line.rstrip()) - 4:
            break
        i = e + 1
    content = line[i + 1:e]
    if '"""' in content: return None
    inner = indent + '    '
    width = LIMIT - len(inner) - 2
    chunks, start = [], 0
    points = split_points(content)
    while len(content) - start > width:
        candidates = [p for p in points if start < p <= start + width]
        if not candidates: break
        cut = candidates[-1]
        chunks.append(content[start:cut]); start = cut
    chunks.append(content[start:])
    if len(chunks) == 1: return None
    out = [line[:i].rstrip() + ' """' if line[:i].strip() else indent + '"""']
    for k, chunk in enumerate(chunks):
        text = chunk
        # Leading spaces of a content line would be kept; an escaped newline keeps them, so move them up.
        out.append(inner + text + (' \\' if False else '\\') if k < len(chunks) - 1 else inner + text)
    out.append(inner + '"""' + line[e + 1:])
    return out

def wrap_comment(line):
    m = re.match(r'(\s*(?://+|\*)\s?)(.*)', line)
    prefix, text = m.group(1), m.group(2)
    words, out, cur = text.split(' '), [], ''
    for w in words:
        if cur and len(prefix) + len(cur) + 1 + len(w) > LIMIT:
            out.append(prefix + cur); cur = w
        else:
            cur = w if not cur else cur + ' ' + w
    out.append(prefix + cur)
    return out

for path in args:
    lines = open(path, encoding='utf-8').read().split('\n')
    result, changed, in_multi, raw = [], False, False, False
    for line in lines:
        if line.count('"""') % 2 == 1:
            in_multi = not in_multi
            raw = in_multi and '#"""' in line
            result.append(line); continue
        if len(line) <= LIMIT:
            result.append(line); continue
        if in_multi:
            # Inside a multi-line literal a line continuation keeps the string exactly as it was.
            if raw or line.rstrip().endswith('\\'):
                result.append(line); continue
            indent = re.match(r'\s*', line).group(0)
            rest, pieces = line, []
            while len(rest) > LIMIT:
                cut = [p for p in split_points(rest) if len(indent) < p <= LIMIT - 2]
                if not cut: break
                pieces.append(rest[:cut[-1]] + '\\'); rest = indent + rest[cut[-1]:]
            result.extend(pieces + [rest]); changed = changed or bool(pieces); continue
        if line.lstrip().startswith('//'):
            result.extend(wrap_comment(line)); changed = True; continue
        wrapped = wrap_literal(line)
        if wrapped:
            result.extend(wrapped); changed = True
        else:
            result.append(line)
    if changed:
        open(path, 'w', encoding='utf-8').write('\n'.join(result))
