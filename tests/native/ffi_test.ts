import assert from "node:assert/strict";
import { ABI_VERSION, nativeInfo } from "../../ts/mod.ts";
import { throwsNative } from "./helpers.ts";
import {
  candidatePaths,
  checkAbiVersion,
  getNative,
  libraryFileName,
  loadNativeFrom,
  NATIVE_PATH_ENV,
} from "../../ts/native/ffi.ts";
import { check } from "../../ts/native/status.ts";

Deno.test("handshake: the loaded library speaks this ABI version", () => {
  const lib = getNative();
  assert.equal(lib.symbols.hn_abi_version(), ABI_VERSION);
  assert.equal(getNative(), lib, "getNative() loads once and caches");
});

Deno.test("nativeInfo parses hn_info_json", () => {
  const info = nativeInfo();
  assert.equal(info.abi, ABI_VERSION);
  assert.match(info.torchVersion, /^\d+\.\d+\.\d+$/);
  assert.equal(typeof info.torch.libDir, "string");
  assert.equal(typeof info.torch.cudaBuild, "boolean");
  assert.equal(typeof info.torch.cudaLoaded, "boolean");
  assert.ok(Array.isArray(info.cudaUsable.devices));
  // no usable device always comes with the reason, and a usable one with none
  assert.equal(info.cudaUsable.devices.length === 0, info.cudaUsable.reason !== null);
  assert.ok(info.threads >= 1, `threads = ${info.threads}`);
  assert.equal(typeof info.mkldnn, "boolean");
  assert.ok(Array.isArray(info.cuda_devices));
  assert.equal(typeof info.library_path, "string");
});

Deno.test("hn_noop goes through the guard and returns HN_OK", () => {
  check(getNative().symbols.hn_noop(), "hn_noop");
});

Deno.test("candidatePaths: env override alone, else release then debug under native/target", () => {
  assert.deepEqual(candidatePaths("/x/libfoo.so", "/repo"), ["/x/libfoo.so"]);
  const name = libraryFileName();
  assert.deepEqual(candidatePaths(undefined, "/repo/"), [
    `/repo/native/target/release/${name}`,
    `/repo/native/target/debug/${name}`,
  ]);
  assert.deepEqual(candidatePaths("", "/repo"), candidatePaths(undefined, "/repo"));
  assert.equal(libraryFileName("darwin"), "libhybridnet.dylib");
  assert.equal(libraryFileName("windows"), "hybridnet.dll");
  assert.equal(libraryFileName("linux"), "libhybridnet.so");
  assert.equal(NATIVE_PATH_ENV, "HYBRIDNET_NATIVE_PATH");
});

Deno.test("loadNativeFrom: a file that is not a library gives LOAD_FAILED listing the path", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/libhybridnet.so`;
    await Deno.writeFile(path, new TextEncoder().encode("this is not an ELF file\n"));
    for (const p of [path, `${dir}/missing/libhybridnet.so`]) {
      const err = throwsNative(() => loadNativeFrom(p), "LOAD_FAILED", /deno task build:native/);
      assert.ok(err.message.includes(p), `message names the path tried: ${err.message}`);
      assert.ok(err.cause !== undefined, "keeps the dlopen error as cause");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadNativeFrom: the real library loads and passes the handshake", () => {
  const lib = loadNativeFrom(getNative().path);
  try {
    assert.equal(lib.symbols.hn_abi_version(), ABI_VERSION);
  } finally {
    lib.close();
  }
});

Deno.test("checkAbiVersion: another version gives ABI_MISMATCH naming both versions and the fix", () => {
  checkAbiVersion(ABI_VERSION, "/lib.so");
  const e = throwsNative(() => checkAbiVersion(42, "/somewhere/libhybridnet.so"), "ABI_MISMATCH");
  assert.match(e.message, /version 42\b/);
  assert.match(e.message, new RegExp(`version ${ABI_VERSION}\\b`));
  assert.match(e.message, /\/somewhere\/libhybridnet\.so/);
  assert.match(e.message, /deno task build:native/);
});

Deno.test("importing mod.ts loads nothing; the first call fails clearly with HYBRIDNET_NATIVE_PATH wrong", async () => {
  const mod = new URL("../../ts/mod.ts", import.meta.url).href;
  const code = `
    const m = await import(${JSON.stringify(mod)});
    console.log("imported");
    try { m.nativeInfo(); } catch (e) { console.log(e.name, e.code, e.message); }
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    env: { HYBRIDNET_NATIVE_PATH: "/nonexistent/libhybridnet.so" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.ok(out.success, text);
  assert.match(text, /^imported$/m);
  assert.match(text, /NativeError LOAD_FAILED/);
  assert.match(text, /\/nonexistent\/libhybridnet\.so/);
  assert.match(text, /HYBRIDNET_NATIVE_PATH is set/);
});
