#!/usr/bin/env python3
"""Collects the files a set of ELF programs and plugins need from Debian packages.

Used by scripts/bundle-gpu.sh. Starting from a few packages, it downloads
(`apt-get download`, with the caller's private apt options) and unpacks only the
packages that provide a shared library some picked file needs (ELF NEEDED,
transitively). A needed library is looked for among the direct dependencies
of the package whose file needs it, preferring dependencies named like the
library, so a plugin package's dozens of unrelated dependencies (ONNX, OpenCV,
...) are never fetched.

usage: debian_closure.py APT_OPTS_FILE DEBS_DIR STAGE_DIR OUT_LIB_DIR SYSTEM_RE \
         --roots PKG... --files STAGE_RELATIVE_PATH:DEST... --extra-elf FILE... --prefer-dir DIR
Prints the packages used, one "name version" a line, to stdout.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

BASE = re.compile(
    r"^(libc6|libc-bin|libgcc-s1|libstdc\+\+6|gcc-\d+-base|debconf|debconf-2\.0|dpkg|perl-base|tar|coreutils|"
    r"base-files|zlib1g|libzstd1|liblzma5|libbz2-1\.0|adduser|passwd|login|init-system-helpers)$"
)
LIB_DIRS = ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu", "usr/lib")


def log(message):
    print(f"bundle-gpu: {message}", file=sys.stderr, flush=True)


class Apt:
    def __init__(self, opts, debs):
        self.opts = opts
        self.debs = debs
        self.versions = {}

    def run(self, tool, *args):
        return subprocess.run([tool, *self.opts, *args], check=True, capture_output=True, text=True).stdout

    def version(self, pkg):
        if pkg not in self.versions:
            out = self.run("apt-cache", "show", "--no-all-versions", pkg)
            m = re.search(r"^Version: (.+)$", out, re.M)
            self.versions[pkg] = m.group(1) if m else None
        return self.versions[pkg]

    def depends(self, pkg):
        out = self.run("apt-cache", "depends", "--no-recommends", "--no-suggests", "--no-conflicts",
                       "--no-breaks", "--no-replaces", "--no-enhances", pkg)
        names = []
        for line in out.splitlines():
            m = re.match(r"\s*\|?(?:Pre)?Depends: <?([^<>\s:]+)", line)
            if m and not BASE.match(m.group(1)):
                names.append(m.group(1))
        return names

    def fetch(self, pkgs):
        need = []
        for p in dict.fromkeys(pkgs):
            v = self.version(p)
            if v is None:
                continue
            if not os.path.exists(os.path.join(self.debs, f"{p}_{v.replace(':', '%3a')}_amd64.deb")) and \
               not os.path.exists(os.path.join(self.debs, f"{p}_{v.replace(':', '%3a')}_all.deb")):
                need.append(p)
        if need:
            log(f"downloading {len(need)} packages: {' '.join(need)}")
            subprocess.run(["apt-get", *self.opts, "download", "-qq", *need], check=True, cwd=self.debs,
                           stdout=subprocess.DEVNULL)

    def deb(self, pkg):
        v = self.version(pkg).replace(":", "%3a")
        for arch in ("amd64", "all"):
            path = os.path.join(self.debs, f"{pkg}_{v}_{arch}.deb")
            if os.path.exists(path):
                return path
        raise SystemExit(f"bundle-gpu: error: {pkg} was not downloaded")


def needed(path):
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\).*\[(.+)\]", out)


def stem(soname):
    base = soname.split(".so")[0].lower()
    return re.sub(r"[-_.]?[0-9][0-9.]*$", "", base).replace("_", "-")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("apt_opts")
    ap.add_argument("debs")
    ap.add_argument("stage")
    ap.add_argument("out_lib")
    ap.add_argument("system_re")
    ap.add_argument("--roots", nargs="+", required=True)
    ap.add_argument("--files", nargs="+", required=True, help="STAGE_RELATIVE_PATH:DEST_PATH")
    ap.add_argument("--extra-elf", nargs="*", default=[], help="files already in the bundle to resolve too")
    ap.add_argument("--prefer-dir", action="append", default=[], help="sonames found here need nothing from Debian")
    a = ap.parse_args()
    with open(a.apt_opts) as f:
        apt = Apt([l.rstrip("\n") for l in f if l.strip()], a.debs)
    system = re.compile(a.system_re)

    owner = {}   # staged file -> package
    index = {}   # soname -> staged path
    unpacked = set()

    def unpack(pkgs):
        pkgs = list(dict.fromkeys(pkgs))
        apt.fetch(pkgs)
        for p in pkgs:
            if p in unpacked or apt.version(p) is None:
                continue
            unpacked.add(p)
            dest = os.path.join(a.stage, p)
            shutil.rmtree(dest, ignore_errors=True)
            subprocess.run(["dpkg-deb", "-x", apt.deb(p), dest], check=True)
            for d in LIB_DIRS:
                full = os.path.join(dest, d)
                if not os.path.isdir(full):
                    continue
                for name in os.listdir(full):
                    if ".so" in name:
                        index.setdefault(name, os.path.join(full, name))
            for dirpath, _, names in os.walk(dest):
                for name in names:
                    owner[os.path.join(dirpath, name)] = p

    unpack(a.roots)
    picked = []
    for spec in a.files:
        rel, dest = spec.split(":", 1)
        src = next((os.path.join(a.stage, p, rel) for p in a.roots if os.path.exists(os.path.join(a.stage, p, rel))),
                   None)
        if src is None:
            raise SystemExit(f"bundle-gpu: error: {rel} is in none of {' '.join(a.roots)}")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(src, dest)
        picked.append((dest, owner[src]))
    for extra in a.extra_elf:
        picked.append((extra, None))

    preferred = set()
    for d in a.prefer_dir:
        preferred.update(os.listdir(d))

    used = set(p for _, p in picked if p)
    done = set()
    queue = list(picked)
    while queue:
        path, pkg = queue.pop()
        for soname in needed(path):
            if soname in done or system.match(soname) or soname in preferred:
                continue
            if soname not in index:
                # Look in the dependencies of the package that needs it:
                # first those named like the library, then all of them.
                deps = apt.depends(pkg) if pkg else []
                if not deps and pkg is None:
                    deps = [d for r in a.roots for d in apt.depends(r)]
                s = stem(soname)
                likely = [d for d in deps if d.startswith(s) or d.replace(".", "").startswith(s.replace(".", ""))]
                unpack([d for d in likely if d not in unpacked])
                if soname not in index:
                    unpack([d for d in deps if d not in unpacked])
                if soname not in index:
                    raise SystemExit(f"bundle-gpu: error: no Debian package found for {soname} "
                                     f"(needed by {os.path.basename(path)} from {pkg or 'the bundle'})")
            done.add(soname)
            src = index[soname]
            dest = os.path.join(a.out_lib, soname)
            shutil.copy(os.path.realpath(src), dest)
            used.add(owner.get(src) or owner.get(os.path.realpath(src)))
            queue.append((dest, owner.get(src) or owner.get(os.path.realpath(src))))
    for p in sorted(x for x in used if x):
        print(p, apt.version(p))


if __name__ == "__main__":
    main()
