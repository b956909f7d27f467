import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ConfigError,
  configJsonSchema,
  configToYaml,
  DEFAULT_BATCH_SIZE,
  DEFAULT_EPOCHS,
  loadConfig,
  refineWithDataset,
} from "../../ts/pipeline/config.ts";
import { DEFAULT_BEST_METRIC } from "../../ts/pipeline/metric-path.ts";
import { expandRecipes, loadCompareSpec } from "../../ts/pipeline/compare.ts";

const MINIMAL = "data:\n  loader:\n    name: synthetic\n";

async function withConfig(text: string, fn: (file: string, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "hn-config-" });
  try {
    const file = join(dir, "x.yaml");
    await Deno.writeTextFile(file, text);
    await fn(file, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The formatted lines of the ConfigError that `p` rejects with. */
async function configErrorLines(p: Promise<unknown>): Promise<string[]> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
    return err.format().split("\n");
  }
  assert.fail("expected the config to be rejected");
}

Deno.test("config: defaults are filled from the DEFAULT_* constants", async () => {
  await withConfig(MINIMAL, async (file, dir) => {
    const c = await loadConfig(file);
    assert.equal(c.train.epochs, DEFAULT_EPOCHS);
    assert.equal(c.train.batchSize, DEFAULT_BATCH_SIZE);
    assert.equal(c.train.bestMetric, DEFAULT_BEST_METRIC);
    assert.equal(c.device, "auto", "auto stays as written: the session resolves it");
    assert.equal(c.baseDir, dir);
    assert.deepEqual(c.data.imageSize, [128, 128]);
    assert.ok(c.data.cacheDir.startsWith("/"), "cacheDir is absolute");
    assert.equal(c.sampler.name, "shuffle");
    assert.equal(c.loss.name, "cross-entropy");
    // plugin options get the plugin's own defaults
    assert.equal((c.data.loader as Record<string, unknown>).numClasses, 4);
    assert.equal(c.train.optimizer.kind, "adam");
  });
});

const ERROR_ROWS: { what: string; yaml: string; overrides?: string[]; expect: RegExp }[] = [
  {
    what: "bad lr names train.optimizer.lr",
    yaml: MINIMAL + "train:\n  optimizer:\n    lr: -1\n",
    expect: /^x\.yaml: train\.optimizer\.lr — Too small: expected number to be >0$/,
  },
  {
    what: "unknown key names its path",
    yaml: MINIMAL + "train:\n  epoch: 3\n",
    expect: /^x\.yaml: train — Unrecognized key: "epoch"$/,
  },
  {
    what: "unknown plugin name lists the built-ins",
    yaml: MINIMAL + "loss:\n  name: nope\n",
    expect:
      /^x\.yaml: loss\.name — unknown loss plugin "nope"; built-ins: class-balanced-focal, cross-entropy, focal, ldam-drw/,
  },
  {
    what: "a bad plugin option is reported under the plugin's section",
    yaml: MINIMAL + "loss:\n  name: focal\n  gamma: -2\n",
    expect: /^x\.yaml: loss\.gamma — Too small/,
  },
  {
    what: "a bad curriculum class names the stage and what to change",
    yaml: MINIMAL +
      "model:\n  numClasses: 4\nstage:\n  name: curriculum\n  stages: [[0, 9], [0, 1, 2, 3]]\n  epochs: [1]\n",
    expect: /^x\.yaml: stage — curriculum: stages\[0\] lists class 9, but the dataset has 4 classes/,
  },
  {
    what: "a --set override is validated like the file",
    yaml: MINIMAL,
    overrides: ["train.batchSize=0"],
    expect: /^x\.yaml: train\.batchSize — Too small/,
  },
  {
    what: "a missing user plugin file is named",
    yaml: MINIMAL + "sampler:\n  name: ./nowhere.ts\n",
    expect: /^x\.yaml: sampler\.name — plugin file .*nowhere\.ts does not exist$/,
  },
];

for (const row of ERROR_ROWS) {
  Deno.test(`config errors: ${row.what}`, async () => {
    await withConfig(row.yaml, async (file) => {
      const prev = Deno.cwd();
      Deno.chdir(join(file, ".."));
      try {
        const lines = await configErrorLines(loadConfig("x.yaml", row.overrides ?? []));
        assert.ok(lines.some((l) => row.expect.test(l)), `${row.what}: got\n${lines.join("\n")}`);
      } finally {
        Deno.chdir(prev);
      }
    });
  });
}

Deno.test("config errors: a YAML syntax error names file:line", async () => {
  await withConfig(MINIMAL + "train:\n  epochs: [1, 2\n  batchSize: 3\n", async (file) => {
    const lines = await configErrorLines(loadConfig(file));
    assert.match(lines[0], /x\.yaml:\d+:\d+: \(root\) — YAML syntax error/);
    const line = Number(/x\.yaml:(\d+):/.exec(lines[0])![1]);
    assert.ok(line >= 5 && line <= 7, `line ${line} points near the broken flow sequence`);
  });
});

Deno.test("config: the dataset's class count is checked against model.numClasses", async () => {
  await withConfig(MINIMAL + "model:\n  numClasses: 5\n", async (file) => {
    const c = await loadConfig(file);
    const lines = await configErrorLines(refineWithDataset(c, 4, "x.yaml"));
    assert.match(
      lines[0],
      /x\.yaml: model\.numClasses — is 5 but the dataset has 4 classes; set it to 4 or "auto"/,
    );
  });
});

Deno.test("config: --set overrides parse YAML scalars and create sections", async () => {
  await withConfig(MINIMAL, async (file) => {
    const c = await loadConfig(file, [
      "train.epochs=7",
      "train.optimizer.lr=3e-4",
      "name=abc",
      "train.earlyStopping={patience: 2}",
      "data.imageSize=[32, 48]",
    ]);
    assert.equal(c.train.epochs, 7);
    assert.equal(c.train.optimizer.lr, 3e-4);
    assert.equal(c.name, "abc");
    assert.equal(c.train.earlyStopping?.patience, 2);
    assert.deepEqual(c.data.imageSize, [32, 48]);
  });
});

Deno.test("config: resolved config -> YAML -> load gives the same config", async () => {
  await withConfig(
    MINIMAL +
      "seed: null\nloss:\n  name: focal\nstage:\n  name: curriculum\n  stages: [[0, 1], [0, 1, 2, 3]]\n  epochs: [2]\n",
    async (file, dir) => {
      const c = await loadConfig(file);
      assert.ok(Number.isInteger(c.seed), "a null seed is resolved to a number");
      const again = join(dir, "sub");
      await Deno.mkdir(again);
      const file2 = join(again, "config.yaml");
      await Deno.writeTextFile(file2, configToYaml(c));
      const c2 = await loadConfig(file2);
      assert.deepEqual(c2, c);
    },
  );
});

Deno.test("config: the JSON Schema lists the built-in plugins", () => {
  const text = JSON.stringify(configJsonSchema());
  for (const name of ["synthetic", "idx", "focal", "curriculum", "inverse-frequency"]) {
    assert.ok(text.includes(`"${name}"`), `schema mentions ${name}`);
  }
});

Deno.test("config: the shipped configs load", async () => {
  for (const f of ["configs/quick.yaml", "configs/seed.yaml"]) {
    const c = await loadConfig(f);
    assert.ok(c.train.epochs > 0, f);
  }
  const seed = await loadConfig("configs/seed.yaml");
  assert.equal(seed.train.epochs, 400);
  assert.equal(seed.loss.name, "focal");
  // the blood-cell recipes: 64 px on CPU, 128 px with bf16 on a GPU, the same choices otherwise
  const pbc = await loadConfig("configs/pbc.yaml"), gpu = await loadConfig("configs/pbc-gpu.yaml");
  assert.deepEqual([pbc.data.imageSize, gpu.data.imageSize], [[64, 64], [128, 128]]);
  assert.deepEqual([pbc.train.precision, gpu.train.precision], ["fp32", "bf16"]);
  for (const c of [pbc, gpu]) {
    assert.deepEqual([c.sampler.name, c.loss.name, c.stage.name], ["shuffle", "cross-entropy", "none"]);
  }
});

Deno.test("config: every shipped compare spec loads, and each of its recipes is a valid config", async () => {
  const dir = "configs/compare";
  const files = [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".yaml")).map((e) =>
    `${dir}/${e.name}`
  );
  assert.ok(files.length >= 4, `only ${files.length} specs`);
  for (const f of files) {
    const spec = await loadCompareSpec(f);
    for (const r of expandRecipes(spec)) {
      const c = await loadConfig(spec.config, [...spec.set, ...r.set]);
      assert.ok(c.train.epochs > 0, `${f}: ${r.name}`);
    }
  }
});
