/**
 * `deno task gpu:pack` (scripts/gpu-pack.ts): the pack fits the device tool's 64 MiB, holds what
 * a machine with no network, cargo or npm needs, and its smoke stage runs from it against the CPU
 * in a bare environment (no HOME, no DENO_DIR but the pack's, no network access needed:
 * `--cached-only`). Uses the built library and ../shared/anchors (the seed's PyTorch model).
 */
import assert from "node:assert/strict";
import { buildPack, LIMIT_BYTES } from "../../scripts/gpu-pack.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

async function sha256(path: string): Promise<string> {
  const h = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(h), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Runs `cmd` with only PATH, HOME (an empty folder) and TMPDIR (a sibling of it) set. */
async function bare(cmd: string[], home: string): Promise<{ code: number; text: string }> {
  await Deno.mkdir(`${home}-tmp`, { recursive: true });
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    clearEnv: true,
    env: { PATH: "/usr/bin:/bin", HOME: home, TMPDIR: `${home}-tmp` },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    text: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
  };
}

Deno.test("gpu:pack: ≤ 64 MiB with the library, Deno, the offline npm cache, sources and the seed model; its smoke stage runs on the CPU", async (t) => {
  const tmp = await Deno.makeTempDir({ prefix: "hn-gpu-pack-test-" });
  try {
    const pack = `${tmp}/pack`;
    const result = await buildPack(pack);

    await t.step("size within the device tool's limit", () => {
      assert.ok(result.bytes <= LIMIT_BYTES, `${result.bytes} bytes`);
      const listed = result.files.reduce((s, f) => s + f.bytes, 0);
      assert.equal(listed, result.bytes);
    });

    await t.step("contents", async () => {
      const paths = new Set(result.files.map((f) => f.path));
      for (
        const p of [
          "PACK.json",
          "PACK.txt",
          "deno.json",
          "deno.lock",
          "bin/deno.xz",
          "deps/npm.tar.xz",
          "native/target/release/libhybridnet.so",
          "peer/hybridnet_seed.py",
          "scripts/gpu-check.sh",
          "scripts/gpu-check/smoke.ts",
          "scripts/gpu-check/parity.ts",
          "scripts/gpu-check/bench.ts",
          "scripts/gpu-check/train.ts",
          "scripts/gpu-check/peer.py",
          "scripts/gpu-check/train.yaml",
          "ts/mod.ts",
          "ts/cli.ts",
          "tests/parity/helpers.ts",
        ]
      ) assert.ok(paths.has(p), `${p} is in the pack`);
      const tops = new Set(result.files.map((f) => f.path.split("/")[0]));
      assert.deepEqual(
        [...tops].sort(),
        [
          "PACK.json",
          "PACK.txt",
          "bin",
          "configs",
          "deno.json",
          "deno.lock",
          "deps",
          "native",
          "peer",
          "scripts",
          "tests",
          "ts",
        ],
      );
      assert.equal(
        await sha256(`${pack}/native/target/release/libhybridnet.so`),
        await sha256(`${ROOT}native/target/release/libhybridnet.so`),
        "the built library, unchanged",
      );
      assert.equal(
        await Deno.readTextFile(`${pack}/peer/hybridnet_seed.py`),
        await Deno.readTextFile(`${ROOT}../shared/anchors/pytorch_seed/hybridnet_seed.py`),
      );
      const config = JSON.parse(await Deno.readTextFile(`${pack}/deno.json`));
      assert.deepEqual(Object.keys(config.imports).sort(), ["commander", "yaml", "zod"]);
      const lock = JSON.parse(await Deno.readTextFile(`${pack}/deno.lock`));
      assert.deepEqual(Object.keys(lock.npm).map((k) => k.replace(/@[^@]*$/, "")).sort(), [
        "commander",
        "yaml",
        "zod",
      ]);
      const listing = await new Deno.Command("tar", {
        args: ["-tJf", `${pack}/deps/npm.tar.xz`],
        stdout: "piped",
      })
        .output();
      const names = new TextDecoder().decode(listing.stdout);
      for (const p of ["zod", "yaml", "commander"]) {
        assert.match(names, new RegExp(`^npm/registry\\.npmjs\\.org/${p}/[0-9.]+/package\\.json$`, "m"));
      }
      assert.doesNotMatch(names, /typescript/);
      // the compressed Deno is this Deno
      const unpacked = await new Deno.Command("xz", { args: ["-dc", `${pack}/bin/deno.xz`], stdout: "piped" })
        .output();
      assert.ok(unpacked.success);
      const digest = async (b: Uint8Array<ArrayBuffer>): Promise<string> =>
        Array.from(
          new Uint8Array(await crypto.subtle.digest("SHA-256", b)),
          (x) => x.toString(16).padStart(2, "0"),
        )
          .join("");
      assert.equal(await digest(unpacked.stdout), await sha256(Deno.execPath()), "bit for bit");
    });

    await t.step("the smoke stage passes from the pack on the CPU in a bare environment", async () => {
      const home = `${tmp}/home`;
      await Deno.mkdir(home);
      const { code, text } = await bare(
        ["bash", `${pack}/scripts/gpu-check.sh`, "--device", "cpu", "--smoke-only", `${tmp}/report`],
        home,
      );
      const report = await Deno.readTextFile(`${tmp}/report/gpu-check.md`).catch(() => "(no report)");
      assert.equal(code, 0, `${text}\n${report}`);
      assert.match(report, /^# GPU check: cpu/);
      assert.match(report, /## 1\. Smoke/);
      assert.match(report, /one forward \(4×3×32×32 → 4×8, finite\) and one train step/);
      assert.match(report, /libhybridnet\.so`/, "the loaded libraries are listed");
      assert.doesNotMatch(report, /FAILED/);
      assert.deepEqual(
        [...Deno.readDirSync(home)],
        [],
        "nothing written to HOME: the pack's DENO_DIR was used",
      );
    });
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gpu:pack refuses a pack over its size limit with the sizes", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "hn-gpu-pack-test-" });
  try {
    await assert.rejects(
      () => buildPack(`${tmp}/pack`, 1 << 20),
      /the pack is [0-9.]+ MiB, over the 1 MiB the device tool carries; largest files: bin\/deno\.xz/,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gpu-check.sh outside a pack says to pack first (exit 2)", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const { code, text } = await bare(
      ["bash", `${ROOT}scripts/gpu-check.sh`, "--device", "cpu", `${tmp}/report`],
      `${tmp}/home`,
    );
    assert.equal(code, 2);
    assert.match(text, /is not a pack \(no PACK\.json\); run 'deno task gpu:pack'/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
