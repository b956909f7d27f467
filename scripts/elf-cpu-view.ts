/**
 * Makes a CPU-only view of a CUDA build of libtorch by editing ELF dynamic sections in place.
 *
 * Why: PyPI's torch 2.11 wheel is a CUDA build. Even libtorch_cpu.so lists libcudart and
 * libcupti as DT_NEEDED (for the Kineto profiler), so on a machine without CUDA nothing that
 * links it can load. The CUDA symbols it imports are functions reached only through the PLT
 * on GPU/profiler paths, so dropping the DT_NEEDED entries and their version requirements
 * leaves a library that loads and runs on CPU with no CUDA library present (lazy binding).
 *
 * The edit: remove matching DT_NEEDED entries (shifting the dynamic array), unlink their
 * Verneed records from .gnu.version_r, and mark symbols that carried those versions as
 * unversioned in .gnu.version. The file size never changes.
 */

const DT_NULL = 0n,
  DT_NEEDED = 1n,
  DT_STRTAB = 5n,
  DT_VERNEED = 0x6ffffffen,
  DT_VERNEEDNUM = 0x6fffffffn,
  DT_VERSYM = 0x6ffffff0n,
  DT_SYMTAB = 6n;

export const CUDA_LIB =
  /^lib(cuda|cudart|cupti|cudnn|cufile|nccl|nvshmem|cublas|cublasLt|nvrtc|cusparse|cufft|curand|cusolver|nvJitLink|c10_cuda|torch_cuda|torch_nvshmem|caffe2_nvrtc)[.\-_]/;

interface Section {
  addr: bigint;
  offset: bigint;
  size: bigint;
  type: number;
  name: string;
}

/** Returns the names of the DT_NEEDED entries it removed. */
export function stripNeeded(bytes: Uint8Array, drop: (soname: string) => boolean): string[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0) !== 0x7f454c46 || bytes[4] !== 2 || bytes[5] !== 1) {
    throw new Error("not a little-endian ELF64 file");
  }
  const u16 = (o: number): number => dv.getUint16(o, true);
  const u32 = (o: number): number => dv.getUint32(o, true);
  const u64 = (o: number): bigint => dv.getBigUint64(o, true);
  const shoff = Number(u64(0x28)), shentsize = u16(0x3a), shnum = u16(0x3c);
  const sections: Section[] = [];
  for (let i = 0; i < shnum; i++) {
    const b = shoff + i * shentsize;
    sections.push({
      type: u32(b + 4),
      name: "",
      addr: u64(b + 0x10),
      offset: u64(b + 0x18),
      size: u64(b + 0x20),
    });
  }
  const dyn = sections.find((s) => s.type === 6 /* SHT_DYNAMIC */);
  if (!dyn) throw new Error("no dynamic section");
  // virtual address -> file offset through the section table (dynamic sections are in LOAD segments)
  const off = (addr: bigint): number => {
    const s = sections.find((s) => s.addr !== 0n && addr >= s.addr && addr < s.addr + s.size);
    if (!s) throw new Error(`address 0x${addr.toString(16)} is in no section`);
    return Number(addr - s.addr + s.offset);
  };
  const entries: [bigint, bigint][] = [];
  for (let o = Number(dyn.offset); o < Number(dyn.offset + dyn.size); o += 16) {
    const tag = u64(o), val = u64(o + 8);
    entries.push([tag, val]);
    if (tag === DT_NULL) break;
  }
  const get = (t: bigint): bigint | undefined => entries.find(([tag]) => tag === t)?.[1];
  const strtab = off(get(DT_STRTAB)!);
  const cstr = (o: number): string => {
    let e = o;
    while (bytes[e] !== 0) e++;
    return new TextDecoder().decode(bytes.subarray(o, e));
  };
  const removed: string[] = [];
  const kept = entries.filter(([tag, val]) => {
    if (tag !== DT_NEEDED) return true;
    const name = cstr(strtab + Number(val));
    if (!drop(name)) return true;
    removed.push(name);
    return false;
  });
  if (removed.length === 0) return removed;
  // version requirements on the removed files: unlink them, remember their indices
  const droppedIdx = new Set<number>();
  const vnAddr = get(DT_VERNEED);
  if (vnAddr !== undefined) {
    let o = off(vnAddr), prev = -1, count = Number(get(DT_VERNEEDNUM) ?? 0n);
    const total = count;
    let newHead: number | null = null, left = 0;
    for (let i = 0; i < total; i++) {
      const file = cstr(strtab + u32(o + 4)), aux = u32(o + 8), next = u32(o + 12);
      const isDropped = removed.includes(file);
      if (isDropped) {
        let a = o + aux;
        for (let k = 0; k < u16(o + 2); k++) {
          droppedIdx.add(u16(a + 6) & 0x7fff);
          const an = u32(a + 12);
          if (an === 0) break;
          a += an;
        }
        count--;
      } else {
        if (prev >= 0) dv.setUint32(prev + 12, o - prev, true);
        else newHead = o;
        prev = o;
        left++;
      }
      if (next === 0) break;
      o += next;
    }
    if (prev >= 0) dv.setUint32(prev + 12, 0, true);
    for (const e of kept) {
      if (e[0] === DT_VERNEEDNUM) e[1] = BigInt(left);
      if (e[0] === DT_VERNEED && newHead !== null) e[1] = BigInt(newHead) - BigInt(off(vnAddr)) + vnAddr;
    }
    // symbols that required a dropped version become unversioned (index 1 = global)
    const versym = get(DT_VERSYM), symtab = get(DT_SYMTAB);
    if (versym !== undefined && symtab !== undefined && droppedIdx.size > 0) {
      const vs = off(versym);
      // symbol count = versym section size / 2
      const sec = sections.find((s) => s.addr === versym);
      const n = sec ? Number(sec.size) / 2 : 0;
      for (let i = 0; i < n; i++) {
        if (droppedIdx.has(u16(vs + 2 * i) & 0x7fff)) dv.setUint16(vs + 2 * i, 1, true);
      }
    }
  }
  // rewrite the dynamic array without the dropped entries, padding with DT_NULL
  let o = Number(dyn.offset);
  for (const [tag, val] of kept) {
    dv.setBigUint64(o, tag, true);
    dv.setBigUint64(o + 8, val, true);
    o += 16;
  }
  for (let i = kept.length; i < entries.length; i++, o += 16) {
    dv.setBigUint64(o, DT_NULL, true);
    dv.setBigUint64(o + 8, 0n, true);
  }
  return removed;
}

if (import.meta.main) {
  for (const path of Deno.args) {
    const bytes = await Deno.readFile(path);
    const removed = stripNeeded(bytes, (n) => CUDA_LIB.test(n));
    if (removed.length) await Deno.writeFile(path, bytes);
    console.log(`${path}: removed ${removed.length ? removed.join(", ") : "nothing"}`);
  }
}
