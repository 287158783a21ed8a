#!/usr/bin/env bash
# Regenerates fuzz/seeds/ (each seed under 64 KiB, real layouts). File formats are made here
# with the tools the tests install (clang-14, lld-link-14, llvm-dlltool, gcab, xz, python3) and
# from the corpus; the kernel-memory seeds (pool walkers, code scan) are written by the
# harness's ignored test `seeds::write`, which builds them with the layouts of the 19041 ISF.
# Usage: fuzz/make_seeds.sh [CORPUS]   (default ../shared/corpus beside the repo)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CORPUS="${1:-$ROOT/../shared/corpus}"
S="$ROOT/fuzz/seeds"
SRC="$ROOT/fuzz/seed_sources"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
mkdir -p "$S"/{pe_memory,pe_file,pdb,isf,pool_page,big_pages,segheap,session,code_scan,cab,file_ptr,pooltag,upload,tag_log,counter_log,crash,kernel,frame_data}

# A tiny driver and its PDB, x64 and x86; the PDBs repacked with 512-byte MSF blocks (15 KB).
LLVM=/usr/lib/llvm-14/bin
for arch in 64 32; do
    if [ $arch = 64 ]; then tgt=x86_64-pc-windows-msvc m=i386:x86-64 extra=""; else tgt=i686-pc-windows-msvc m=i386 extra="/safeseh:no"; fi
    "$LLVM/llvm-dlltool" -m $m -d "$SRC/nt.def" -l "$T/nt$arch.lib" -k
    clang-14 --target=$tgt -O1 -c -g -gcodeview "$SRC/tiny.c" -o "$T/tiny$arch.obj"
    lld-link-14 /driver /subsystem:native /entry:DriverEntry /debug /pdb:"$T/tiny$arch.pdb" \
        /out:"$T/tiny$arch.sys" "$T/tiny$arch.obj" "$T/nt$arch.lib" /nodefaultlib $extra >/dev/null
    python3 "$SRC/repack.py" "$T/tiny$arch.pdb" "$S/pdb/tiny$arch.pdb" >/dev/null
    cp "$T/tiny$arch.sys" "$S/pe_file/tiny$arch.sys"
done
cp "$CORPUS/drivers/usb2dbg.sys" "$S/pe_file/usb2dbg.sys"

# CAB (.pd_) files as symstore /compress writes them (MSZIP) and uncompressed.
cp "$S/pdb/tiny64.pdb" "$T/ntkrnlmp.pdb"
(cd "$T" && gcab -c -z ntkrnlmp.pd_ ntkrnlmp.pdb && gcab -c ntkrnlmp_stored.pd_ ntkrnlmp.pdb)
cp "$T/ntkrnlmp.pd_" "$S/cab/mszip.pd_"
cp "$T/ntkrnlmp_stored.pd_" "$S/cab/stored.pd_"

# ISF: the harness's cut-down 19041 profile, as .json (byte 0 = 0) and .json.xz (byte 0 = 1).
ISF="$ROOT/fuzz/harness/data/w19041_min.json"
{ printf '\0'; cat "$ISF"; } > "$S/isf/w19041_min.json"
{ printf '\1'; xz -9 -c "$ISF"; } > "$S/isf/w19041_min.json.xz"

# file.ptr as symstore and other tools write it.
printf 'PATH:\\\\server\\share\\ntkrnlmp.pdb\\0123\\ntkrnlmp.pdb\r\n' > "$S/file_ptr/unc"
printf 'MSG: deleted by symstore\r\n' > "$S/file_ptr/msg"
printf '../other/ntkrnlmp.pdb\n' > "$S/file_ptr/relative"
printf 'https://symbols.example/ntkrnlmp.pdb/0123/ntkrnlmp.pdb\n' > "$S/file_ptr/url"

# pooltag.txt: the SDK file's first 300 lines.
head -n 300 "$CORPUS/pooltag.txt" > "$S/pooltag/pooltag_head.txt"

# Uploads: a dump header raw, gzipped and zipped (stored and deflated).
cp "$ROOT/fuzz/seeds/header/full64" "$T/MEMORY.DMP"
cp "$T/MEMORY.DMP" "$S/upload/raw.dmp"
gzip -9 -c "$T/MEMORY.DMP" > "$S/upload/dump.gz"
python3 - "$T/MEMORY.DMP" "$S/upload" <<'PY'
import sys, zipfile
src, out = sys.argv[1], sys.argv[2]
for name, method in (("deflated.zip", zipfile.ZIP_DEFLATED), ("stored.zip", zipfile.ZIP_STORED)):
    with zipfile.ZipFile(f"{out}/{name}", "w", method) as z:
        z.write(src, "MEMORY.DMP")
PY

# Trend logs: the forge's poolmon and typeperf logs of a 3-dump series, a poolsnap log.
"$ROOT/target/debug/pooltriage" forge --profile win10-19041-x64 --size 268435456 --series 3 \
    --scenario growing-leak --format kernel-bitmap --out "$T/series" --corpus "$CORPUS" >/dev/null
cp "$T/series/poolmon.log" "$S/tag_log/poolmon.log"
cp "$SRC/poolsnap.log" "$S/tag_log/poolsnap.log"
cp "$T/series/typeperf.csv" "$S/counter_log/typeperf.csv"
tr ',' '\t' < "$T/series/typeperf.csv" > "$S/counter_log/typeperf.tsv"

# Kernel memory, pool pages and code: built by the harness.
(cd "$ROOT" && POOLTRIAGE_WRITE_SEEDS="$S" cargo test -q -p pooltriage-fuzz-harness --lib -- --ignored seeds::write >/dev/null)
find "$S" -type f -size +64k -exec echo "seed over 64 KiB: {}" \; | grep . && exit 1
echo "seeds written to $S"
