/**
 * Stage 5 of the GPU check: a short real run through the CLI (`ts/cli.ts train`, the path users
 * take) on the device, with train.yaml's synthetic 8-class set; reports each epoch's train and val
 * accuracy from the run's metrics.jsonl and whether val accuracy rose from the first epoch to the
 * last. The run folder goes to a temp folder (only the figures come back).
 */
import { arg, deviceArg, fragment, isCuda } from "./common.ts";

const device = deviceArg();
const cuda = isCuda(device);
const out = fragment();
const here = new URL(".", import.meta.url).pathname;
const root = new URL("../../", import.meta.url).pathname;
const sets = cuda
  ? ["data.loader.perClass=200", "data.loader.valPerClass=50", "train.epochs=5", "train.batchSize=64"]
  : [
    "data.loader.perClass=24",
    "data.loader.valPerClass=8",
    "train.epochs=3",
    "train.batchSize=32",
    `train.threads=${arg("threads", "1")}`,
  ];
const runs = await Deno.makeTempDir({ prefix: "hn-gpu-train-" });
out.add(
  "## 5. A short training run",
  "",
  `\`ts/cli.ts train --config scripts/gpu-check/train.yaml --device ${device} --set ${
    sets.join(" --set ")
  }\``,
  "",
);
const t0 = performance.now();
const res = await new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    "--cached-only",
    "--frozen",
    `--config=${root}deno.json`,
    `${root}ts/cli.ts`,
    "train",
    "--config",
    `${here}train.yaml`,
    "--device",
    device,
    "--out",
    runs,
    "--name",
    "gpu-check",
    "--quiet",
    ...sets.flatMap((s) => ["--set", s]),
  ],
  stdout: "piped",
  stderr: "piped",
}).output();
const seconds = (performance.now() - t0) / 1000;
const text = new TextDecoder().decode(res.stdout) + new TextDecoder().decode(res.stderr);
if (!res.success) {
  out.add(
    `**FAILED** (exit ${res.code}, ${seconds.toFixed(0)} s):`,
    "",
    "```",
    text.trim().slice(-4000),
    "```",
  );
  Deno.exit(1);
}
const [runDir] = [...Deno.readDirSync(runs)].map((e) => `${runs}/${e.name}`);
const epochs = Deno.readTextFileSync(`${runDir}/metrics.jsonl`).trim().split("\n").map((l) => JSON.parse(l));
out.add("| epoch | train loss | train acc | val acc | train img/s |", "|---|---|---|---|---|");
for (const e of epochs) {
  out.add(
    `| ${e.epoch + 1} | ${e.train.loss.toFixed(4)} | ${(e.train.accuracy * 100).toFixed(1)}% | ${
      (e.val.all.accuracy * 100).toFixed(1)
    }% | ${e.train.imagesPerSecond.toFixed(0)} |`,
  );
}
const first = epochs[0].val.all.accuracy, last = epochs.at(-1).val.all.accuracy;
const rose = last > first;
out.add(
  "",
  `Val accuracy ${(first * 100).toFixed(1)}% → ${
    (last * 100).toFixed(1)
  }% over ${epochs.length} epochs (chance 12.5%): ${
    rose ? "rises" : "**does not rise**"
  }; the whole command took ${seconds.toFixed(0)} s.`,
);
await Deno.remove(runs, { recursive: true });
if (!rose) Deno.exit(1);
