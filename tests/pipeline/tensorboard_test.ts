/**
 * TensorBoard event files: the CRC-32C, the record framing, the protobuf bytes and the PNG
 * encoder, then a real run (interrupted and resumed) read back with TensorBoard's own reader
 * (tests/pipeline/read_tensorboard.py in the project venv) and checked against metrics.jsonl.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { TENSORBOARD_VERSION, VENV } from "../../scripts/lib/libtorch.ts";
import type { BatchInfo, Callback, EpochRecord } from "../../ts/pipeline/callbacks.ts";
import { crc32, encodePng } from "../../ts/pipeline/png.ts";
import { runPipeline } from "../../ts/pipeline/runner.ts";
import { classTags, epochScalars, LOG_EVERY_STEPS } from "../../ts/pipeline/tb-callback.ts";
import { crc32c, encodeEvent, maskCrc, ProtoWriter, tfRecord } from "../../ts/pipeline/tensorboard.ts";
import { configIn, syntheticYaml } from "./helpers.ts";

const PYTHON = `${VENV}/bin/python`;
const READER = new URL("./read_tensorboard.py", import.meta.url).pathname;
const INSTALL_HINT =
  `tensorboard==${TENSORBOARD_VERSION} is needed in the project venv (${VENV}) to read the ` +
  `event files back: run \`npx -y deno@2.9.6 run -A scripts/build-native.ts --if-stale\` (it installs it), ` +
  `or \`${PYTHON} -m pip install tensorboard==${TENSORBOARD_VERSION}\``;

/** Runs the reader in `mode` on `path`; fails with the install hint when tensorboard is missing. */
async function readBack<T>(mode: "events" | "png", path: string): Promise<T> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(PYTHON, { args: [READER, mode, path], stdout: "piped", stderr: "piped" })
      .output();
  } catch (err) {
    throw new Error(`${PYTHON} cannot run. ${INSTALL_HINT}`, { cause: err });
  }
  const stderr = new TextDecoder().decode(out.stderr);
  if (out.code === 3) assert.fail(`${stderr.trim()}\n${INSTALL_HINT}`);
  assert.ok(out.success, `read_tensorboard.py ${mode} ${path} failed:\n${stderr}`);
  return JSON.parse(new TextDecoder().decode(out.stdout)) as T;
}

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

Deno.test("tensorboard: CRC-32C known vector, mask, record framing", () => {
  assert.equal(crc32c(ascii("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa, "32 zero bytes (RFC 3720 B.4)");
  assert.equal(maskCrc(0), 0xa282ead8);
  assert.equal(maskCrc(0xe3069283), ((((0xe3069283 >>> 15) | (0xe3069283 << 17)) >>> 0) + 0xa282ead8) >>> 0);
  const data = ascii("hello");
  const rec = tfRecord(data);
  const dv = new DataView(rec.buffer);
  assert.equal(rec.length, 16 + data.length);
  assert.equal(dv.getBigUint64(0, true), 5n);
  assert.equal(dv.getUint32(8, true), maskCrc(crc32c(rec.subarray(0, 8))));
  assert.deepEqual(rec.subarray(12, 17), data);
  assert.equal(dv.getUint32(17, true), maskCrc(crc32c(data)));
});

Deno.test("tensorboard: protobuf bytes of varints and of a scalar, session-start and file-version event", () => {
  assert.deepEqual([...new ProtoWriter().uint(1, 300).finish()], [0x08, 0xac, 0x02]);
  assert.deepEqual([...new ProtoWriter().uint(2, 2 ** 40).finish()], [
    0x10,
    0x80,
    0x80,
    0x80,
    0x80,
    0x80,
    0x20,
  ]);
  assert.throws(() => new ProtoWriter().uint(1, -1), RangeError);
  const f64 = (v: number): number[] => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    return [...b];
  };
  // Event{wall_time=1.5, step=3, summary{value{tag="a", simple_value=1}}}
  const value = [0x0a, 0x01, 0x61, 0x15, 0x00, 0x00, 0x80, 0x3f];
  const summary = [0x0a, value.length, ...value];
  assert.deepEqual(
    [...encodeEvent(1.5, 3, { summary: [{ tag: "a", value: 1 }] })],
    [0x09, ...f64(1.5), 0x10, 0x03, 0x2a, summary.length, ...summary],
  );
  // a zero is written too: simple_value is in a oneof
  assert.deepEqual(
    [...encodeEvent(0, 0, { summary: [{ tag: "a", value: 0 }] })].slice(-5),
    [0x15, 0, 0, 0, 0],
  );
  assert.deepEqual([...encodeEvent(0, 7, { sessionStart: true })].slice(9), [
    0x10,
    0x07,
    0x3a,
    0x02,
    0x08,
    0x01,
  ]);
  const fv = encodeEvent(0, 0, { fileVersion: "brain.Event:2" });
  assert.deepEqual([...fv.slice(9, 13)], [0x10, 0x00, 0x1a, 13]);
  assert.equal(new TextDecoder().decode(fv.slice(13)), "brain.Event:2");
});

Deno.test("png: CRC-32, and an RGB and a gray image decode back (zlib, chunk CRCs, IHDR)", async () => {
  assert.equal(crc32(ascii("123456789")), 0xcbf43926);
  const dir = await Deno.makeTempDir({ prefix: "hn-png-" });
  try {
    const cases: [number, number, 1 | 3][] = [[5, 3, 3], [2, 4, 1]];
    for (const [w, h, c] of cases) {
      const pixels = Uint8Array.from({ length: w * h * c }, (_, i) => (i * 37 + 11) & 0xff);
      const png = await encodePng(pixels, w, h, c);
      assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      const file = join(dir, `${w}x${h}x${c}.png`);
      await Deno.writeFile(file, png);
      const back = await readBack<
        { width: number; height: number; colorType: number; pixels: string; chunks: string[] }
      >(
        "png",
        file,
      );
      assert.deepEqual(back.chunks, ["IHDR", "IDAT", "IEND"]);
      assert.deepEqual([back.width, back.height, back.colorType], [w, h, c === 3 ? 2 : 0]);
      assert.equal(back.pixels, Array.from(pixels, (b) => b.toString(16).padStart(2, "0")).join(""));
    }
    await assert.rejects(() => encodePng(new Uint8Array(5), 2, 2, 1), RangeError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

interface ReadBack {
  files: {
    name: string;
    records: number;
    events: { step: number; kind: string; fileVersion?: string; status?: number; tags?: string[] }[];
  }[];
  scalars: Record<string, [number, number][]>;
  images: Record<
    string,
    { step: number; width: number; height: number; png: { width: number; height: number } }[]
  >;
}

/** Every step's figures, kept per process (index 0: the interrupted one). */
class StepRecorder implements Callback {
  processes: Map<number, BatchInfo>[] = [];
  onFitStart(): void {
    this.processes.push(new Map());
  }
  onTrainBatchEnd(_e: number, _s: number, _l: number, _i: number, batch: BatchInfo): void {
    this.processes.at(-1)!.set(batch.globalStep, batch);
  }
}

/** Stops the first process at the end of epoch `epoch` (after metrics.jsonl and TensorBoard, before its checkpoint). */
function interruptAt(epoch: number): Callback {
  let armed = true;
  return {
    onEpochEnd(r: EpochRecord): void {
      if (armed && r.epoch === epoch) {
        armed = false;
        throw new Error("interrupted by the test");
      }
    },
  };
}

/** The step-level points a process writes: every LOG_EVERY_STEPS, the mean of the losses read since the last. */
function expectedStepPoints(steps: Map<number, BatchInfo>): Map<number, { lr: number; loss?: number }> {
  const out = new Map<number, { lr: number; loss?: number }>();
  let sum = 0, n = 0;
  for (const [g, b] of [...steps].sort((x, y) => x[0] - y[0])) {
    if (b.loss !== null) [sum, n] = [sum + b.loss, n + 1];
    if (g % LOG_EVERY_STEPS !== 0) continue;
    out.set(g, n > 0 ? { lr: b.lr, loss: sum / n } : { lr: b.lr });
    [sum, n] = [0, 0];
  }
  return out;
}

Deno.test("tensorboard: a run interrupted and resumed, read back with TensorBoard, matches metrics.jsonl", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hn-tb-" });
  try {
    const stepsPerEpoch = 25; // 3 epochs: 75 steps, one step-level point at 50 (LOG_EVERY_STEPS)
    const config = await configIn(
      dir,
      syntheticYaml({
        perClass: 64,
        valPerClass: 3,
        epochs: 3,
        extra: "stage:\n  name: curriculum\n  stages: [[0, 1], [0, 1, 2, 3]]\n  epochs: [1]\n",
      }),
      [`train.maxStepsPerEpoch=${stepsPerEpoch}`, "train.batchSize=4"],
    );
    const steps = new StepRecorder();
    await assert.rejects(
      () => runPipeline(config, { out: dir, console: false, callbacks: [steps, interruptAt(1)] }),
      /interrupted by the test/,
    );
    const runDir = join(dir, [...Deno.readDirSync(dir)].find((e) => e.isDirectory)!.name);
    await runPipeline(config, { resumeDir: runDir, console: false, callbacks: [steps] });

    const records = (await Deno.readTextFile(join(runDir, "metrics.jsonl"))).trim().split("\n")
      .map((l) => JSON.parse(l) as EpochRecord);
    assert.deepEqual(records.map((r) => r.globalStep), [25, 50, 75]);
    const tb = await readBack<ReadBack>("events", join(runDir, "tb"));

    // two files, each opened by its file_version; the resumed one starts with a SessionLog START
    assert.equal(tb.files.length, 2, tb.files.map((f) => f.name).join(", "));
    for (const f of tb.files) {
      assert.match(f.name, /^events\.out\.tfevents\.\d{10}\.[^/]+$/);
      assert.equal(f.records, f.events.length, `${f.name}: every record is an event`);
      assert.deepEqual(f.events[0], { ...f.events[0], kind: "file_version", fileVersion: "brain.Event:2" });
    }
    assert.deepEqual(tb.files[1].events[1], {
      ...tb.files[1].events[1],
      kind: "session_log",
      status: 1,
      step: 26,
    });
    // the first file also holds epoch 1 (step 50), which the resume redid: TensorBoard shows it once
    assert.ok(tb.files[0].events.some((e) => e.step === 50 && e.tags?.includes("train/epoch")));

    // epoch-level scalars: exactly the records' figures at their global steps (float32)
    const classes = classTags(["class_0", "class_1", "class_2", "class_3"]);
    assert.deepEqual(classes, ["0_class_0", "1_class_1", "2_class_2", "3_class_3"]);
    const expected = new Map<string, [number, number][]>();
    for (const r of records) {
      for (const [tag, v] of Object.entries(epochScalars(r, classes))) {
        expected.set(tag, [...(expected.get(tag) ?? []), [r.globalStep, Math.fround(v)]]);
      }
    }
    const last = records[2], first = records[0];
    const spot: [string, number, number][] = [
      ["val/loss", 75, last.val!.all.loss],
      ["val/accuracy", 75, last.val!.all.accuracy],
      ["val/macro_f1", 75, last.val!.all.macroF1],
      ["val/balanced_accuracy", 75, last.val!.all.balancedAccuracy],
      ["val/recall/3_class_3", 75, last.val!.all.perClass[3].recall],
      ["val/f1/2_class_2", 75, last.val!.all.perClass[2].f1],
      ["val_active/accuracy", 25, first.val!.active.accuracy],
      ["train/loss", 25, first.train.loss],
      ["train/accuracy", 75, last.train.accuracy],
      ["train/recall/0_class_0", 25, first.trainMetrics.perClass[0].recall],
      ["train/lr", 50, records[1].lr],
      ["train/epoch", 75, 3],
      ["perf/images_per_second", 50, records[1].train.imagesPerSecond],
      ["curriculum/stage", 25, 1],
      ["curriculum/stage", 75, 2],
      ["curriculum/active_classes", 25, 2],
      ["sampled_per_class/1_class_1", 75, last.sampledPerClass[1]],
    ];
    for (const [tag, step, v] of spot) {
      const got = tb.scalars[tag]?.find(([s]) => s === step);
      assert.deepEqual(got, [step, Math.fround(v)], `${tag} at step ${step}`);
    }
    // class 2 and 3 are not trained in stage 1: no train recall for them at step 25
    assert.deepEqual(tb.scalars["train/recall/3_class_3"].map(([s]) => s), [50, 75]);
    assert.deepEqual(
      tb.scalars["val_active/accuracy"].map(([s]) => s),
      [25],
      "only while a stage trains some",
    );

    // step-level points: LR and the mean read loss at step 50, from the resumed process's steps
    const points = expectedStepPoints(steps.processes[1]);
    assert.deepEqual([...points.keys()], [50]);
    expected.set("train_step/lr", [[50, Math.fround(points.get(50)!.lr)]]);
    expected.set("train_step/loss", [[50, Math.fround(points.get(50)!.loss!)]]);
    assert.deepEqual(Object.keys(tb.scalars).sort(), [...expected.keys()].sort());
    for (const [tag, want] of expected) assert.deepEqual(tb.scalars[tag], want, tag);

    // the confusion heat maps: one per epoch (train) and evaluation (val), 4 classes of 48 px + grid
    assert.deepEqual(Object.keys(tb.images).sort(), ["train/confusion_matrix", "val/confusion_matrix"]);
    for (const [tag, imgs] of Object.entries(tb.images)) {
      assert.deepEqual(imgs.map((i) => i.step), [25, 50, 75], tag);
      for (const i of imgs) {
        assert.deepEqual([i.width, i.height, i.png.width, i.png.height], [197, 197, 197, 197], tag);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
