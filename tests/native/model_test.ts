import assert from "node:assert/strict";
import { type BatchShape, createModel, createTrainer, loadModel, type Model } from "../../ts/mod.ts";
import { checkHandle, type HandleErrorFn } from "../../ts/native/status.ts";
import { getNative } from "../../ts/native/ffi.ts";
import {
  batch,
  maxAbsDiff,
  parseSafetensors,
  prng,
  rejectsNative,
  type StTensor,
  throwsNative,
  writeSafetensors,
} from "./helpers.ts";

const HW = 32;
const probe = batch(2, 3, HW, 7);

/** Parameters of the seed model with 8 classes (the PyTorch oracle's `num_parameters`). */
const SEED_PARAMS = 7_696_913;
/** The same model with `c` classes: the last layer, Linear(256, c), has 257 values per class. */
function seedParams(classes: number): number {
  return SEED_PARAMS - 257 * (8 - classes);
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "hybridnet-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("createModel: 8 classes x 3 channels has 7,696,913 parameters; describe lists them", () => {
  using model = createModel({ numClasses: 8, inputChannels: 3 });
  assert.equal(model.numClasses, 8);
  assert.equal(model.parameterCount(), SEED_PARAMS);
  const desc = model.describe();
  assert.equal(desc.numClasses, 8);
  assert.ok(desc.params.length > 0);
  const names = new Set(desc.params.map((p) => p.name));
  assert.equal(names.size, desc.params.length, "tensor names are unique");
  for (const p of desc.params) assert.ok(p.shape.every((d) => Number.isInteger(d) && d > 0), p.name);
});

Deno.test("forward: [n, numClasses] finite logits; same seed gives the same logits, another seed not", async () => {
  using a = createModel({ numClasses: 8, seed: 11 });
  using b = createModel({ numClasses: 8, seed: 11 });
  using c = createModel({ numClasses: 8, seed: 12 });
  const la = await a.forward(probe.x, probe.shape);
  assert.equal(la.length, 2 * 8);
  assert.ok(la.every(Number.isFinite), "finite logits");
  assert.deepEqual(await b.forward(probe.x, probe.shape), la, "same seed, same logits");
  assert.deepEqual(await a.forward(probe.x, probe.shape), la, "eval forward is repeatable");
  assert.ok(maxAbsDiff(await c.forward(probe.x, probe.shape), la) > 1e-6, "another seed, other logits");
});

Deno.test("save -> loadModel gives identical logits", async () => {
  await withTempDir(async (dir) => {
    using a = createModel({ numClasses: 5, seed: 3 });
    const path = `${dir}/model.safetensors`;
    await a.save(path);
    using b = await loadModel(path, { numClasses: 5, seed: 99 });
    assert.deepEqual(await b.forward(probe.x, probe.shape), await a.forward(probe.x, probe.shape));
  });
});

Deno.test("forward: bad inputs give INVALID_ARG with a clear message, and the model keeps working", async () => {
  using model = createModel({ numClasses: 4 });
  const { x, shape } = probe;
  await rejectsNative(() => model.forward(x.subarray(1), shape), "INVALID_ARG", /6143 values.*needs 6144/);
  await rejectsNative(
    () => model.forward(x, [2, 3, 1024] as unknown as BatchShape),
    "INVALID_ARG",
    /4 dims.*3 dims/,
  );
  await rejectsNative(
    () => model.forward(new Float32Array(2 * 4 * HW * HW), [2, 4, HW, HW]),
    "INVALID_ARG",
    /4 channels.*takes 3/,
  );
  await rejectsNative(() => model.forward(x, [0, 3, HW, HW]), "INVALID_ARG", /positive integer/);
  for (const bad of [NaN, Infinity, -Infinity]) {
    const y = x.slice();
    y[100] = bad;
    await rejectsNative(() => model.forward(y, shape), "INVALID_ARG", /nan|inf|finite/i);
  }
  assert.ok((await model.forward(x, shape)).every(Number.isFinite), "still works after the errors");
});

Deno.test("hn_model_forward_eval validates natively too (bypassing the TS checks)", async () => {
  using model = createModel({ numClasses: 4 });
  const { hn_model_forward_eval, hn_model_last_error } = getNative().symbols;
  const h = model.unsafeHandle;
  const lastError: HandleErrorFn = (buf, cap, outLen) => hn_model_last_error(h, buf, cap, outLen);
  const x = probe.x as Float32Array<ArrayBuffer>;
  const out = new Float32Array(8);
  const call = async (xLen: number, shape: number[], outLen: number): Promise<void> => {
    const status = await hn_model_forward_eval(
      h,
      x,
      BigInt(xLen),
      BigInt64Array.from(shape.map(BigInt)),
      out,
      BigInt(outLen),
    );
    checkHandle(status, "hn_model_forward_eval", lastError);
  };
  await call(x.length, [2, 3, HW, HW], 8);
  await rejectsNative(() => call(x.length - 1, [2, 3, HW, HW], 8), "INVALID_ARG");
  await rejectsNative(() => call(x.length, [2, 4, HW, 24], 8), "INVALID_ARG");
  await rejectsNative(() => call(x.length, [2, 3, HW, HW], 7), "INVALID_ARG");
  await rejectsNative(() => call(x.length, [-2, -3, HW, HW], 8), "INVALID_ARG");
  await call(x.length, [2, 3, HW, HW], 8);
});

Deno.test("checkpoints: missing, truncated, not safetensors, wrong/missing/extra names, wrong shape", async () => {
  await withTempDir(async (dir) => {
    using model = createModel({ numClasses: 4, seed: 5 });
    const before = await model.forward(probe.x, probe.shape);
    const good = `${dir}/good.safetensors`;
    await model.save(good);
    const bytes = await Deno.readFile(good);
    const file = parseSafetensors(bytes);
    const names = [...file.tensors.keys()];
    assert.deepEqual(names.toSorted(), model.describe().params.map((p) => p.name).toSorted());

    const write = async (name: string, data: Uint8Array): Promise<string> => {
      const path = `${dir}/${name}.safetensors`;
      await Deno.writeFile(path, data);
      return path;
    };
    const variant = (edit: (t: Map<string, StTensor>) => void): Uint8Array => {
      const tensors = new Map(file.tensors);
      edit(tensors);
      return writeSafetensors({ tensors, metadata: file.metadata });
    };

    await rejectsNative(() => model.load(`${dir}/nope.safetensors`), "IO", /nope\.safetensors/);
    await rejectsNative(() => model.load(dir), "IO");
    const truncated = await write("truncated", bytes.subarray(0, Math.floor(bytes.length / 2)));
    await rejectsNative(() => model.load(truncated), "CHECKPOINT");
    const rand = prng(1);
    const noise = await write("noise", Uint8Array.from({ length: 4096 }, () => Math.floor(rand() * 256)));
    await rejectsNative(() => model.load(noise), "CHECKPOINT");
    const tiny = await write("tiny", new Uint8Array([1, 2, 3]));
    await rejectsNative(() => model.load(tiny), "CHECKPOINT");

    const victim = names[names.length >> 1];
    const missing = await write("missing", variant((t) => t.delete(victim)));
    await rejectsNative(() => model.load(missing), "CHECKPOINT", new RegExp(escape(victim)));
    const extra = await write(
      "extra",
      variant((t) => t.set("bogus.extra_weight", { dtype: "F32", shape: [2], data: new Uint8Array(8) })),
    );
    await rejectsNative(() => model.load(extra), "CHECKPOINT", /bogus\.extra_weight/);
    const renamed = await write(
      "renamed",
      variant((t) => {
        const v = t.get(victim)!;
        t.delete(victim);
        t.set(`${victim}_renamed`, v);
      }),
    );
    await rejectsNative(() => model.load(renamed), "CHECKPOINT", new RegExp(escape(victim)));
    const matrix = names.find((n) => file.tensors.get(n)!.shape.length >= 2)!;
    const reshaped = await write(
      "reshaped",
      variant((t) => {
        const v = t.get(matrix)!;
        t.set(matrix, { ...v, shape: [v.shape.reduce((a, b) => a * b, 1)] });
      }),
    );
    await rejectsNative(() => model.load(reshaped), "CHECKPOINT", new RegExp(escape(matrix)));

    await rejectsNative(() => loadModel(missing, { numClasses: 4 }), "CHECKPOINT");
    await rejectsNative(() => loadModel(good, { numClasses: 5 }), "CHECKPOINT", /shape/i);

    // Our rewriter itself produces loadable files: the failures above are the edits, not the format.
    const rewritten = await write("rewritten", variant(() => {}));
    await model.load(rewritten);
    assert.deepEqual(
      await model.forward(probe.x, probe.shape),
      before,
      "failed loads left the weights as they were",
    );
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

Deno.test("close: idempotent, later calls throw CLOSED without touching native code; `using` closes", async () => {
  const model = createModel({ numClasses: 3 });
  assert.equal(model.closed, false);
  model.close();
  model.close();
  model[Symbol.dispose]();
  assert.equal(model.closed, true);
  await rejectsNative(() => model.forward(probe.x, probe.shape), "CLOSED");
  await rejectsNative(() => model.save("/tmp/never-written.safetensors"), "CLOSED");
  await rejectsNative(() => model.load("/tmp/never-read.safetensors"), "CLOSED");
  throwsNative(() => model.parameterCount(), "CLOSED");
  throwsNative(() => model.describe(), "CLOSED");
  throwsNative(() => model.unsafeHandle, "CLOSED");
  throwsNative(() => createTrainer(model), "CLOSED");

  let escaped: Model;
  {
    using m = createModel({ numClasses: 3 });
    escaped = m;
    assert.equal(m.closed, false);
  }
  assert.equal(escaped.closed, true);
});

Deno.test("model.close() closes its trainers; a trainer closes alone and twice", async () => {
  const model = createModel({ numClasses: 2, dropoutRate: 0 });
  const t1 = createTrainer(model);
  const t2 = createTrainer(model);
  t2.close();
  t2.close();
  assert.equal(t2.closed, true);
  assert.equal(t1.closed, false);
  assert.equal(model.closed, false, "closing a trainer leaves its model open");
  model.close();
  assert.equal(t1.closed, true, "model.close() closed the trainer");
  const targets = new Int32Array([0, 1]);
  await rejectsNative(() => t1.trainStep(probe.x, probe.shape, targets), "CLOSED");
  await rejectsNative(() => t1.forwardTrain(probe.x, probe.shape), "CLOSED");
  await rejectsNative(() => t1.backwardStep(new Float32Array(4)), "CLOSED");
  await rejectsNative(() => t1.saveState("/tmp/never.safetensors"), "CLOSED");
  throwsNative(() => t1.setLr(1e-3), "CLOSED");
  throwsNative(() => t1.stepCount(), "CLOSED");
  throwsNative(() => t1.setLoss({ kind: "focal" }), "CLOSED");
  t1.close();
});

Deno.test("calls on one model queue: concurrent forwards all resolve; sync calls while busy throw BUSY", async () => {
  using model = createModel({ numClasses: 3, seed: 2 });
  const ref = await model.forward(probe.x, probe.shape);
  const pending = [0, 1, 2].map(() => model.forward(probe.x, probe.shape));
  throwsNative(() => model.parameterCount(), "BUSY");
  for (const logits of await Promise.all(pending)) assert.deepEqual(logits, ref);
  assert.equal(model.parameterCount(), seedParams(3), "idle again after the queue drains");

  // close() while a call is queued: the queued call rejects CLOSED, the free waits for the queue.
  const m2 = createModel({ numClasses: 3 });
  const inFlight = m2.forward(probe.x, probe.shape);
  m2.close();
  await rejectsNative(() => inFlight, "CLOSED");
});

Deno.test("kernel options: two models in one process each follow their own, with the same function", async () => {
  const off = { fusedGroupNorm: false, convRewrites: false, channelsLast: false };
  using fast = createModel({ numClasses: 8, seed: 21 });
  using plain = createModel({ numClasses: 8, seed: 21, kernels: off });
  using onlyLayout = createModel({ numClasses: 8, seed: 21, kernels: { ...off, channelsLast: true } });
  assert.deepEqual(fast.describe().config.kernels, {
    fused_group_norm: true,
    conv_rewrites: true,
    channels_last: true,
  });
  assert.deepEqual(plain.describe().config.kernels, {
    fused_group_norm: false,
    conv_rewrites: false,
    channels_last: false,
  });
  // 64 px: the stem's pool and the residual stages go channels-last in inference; the 2x2 and
  // 1x1 maps of the last stages take the conv rewrites. The three models run in turn.
  const x = batch(2, 3, 64, 5);
  const [a, b, c] = [
    await fast.forward(x.x, x.shape),
    await plain.forward(x.x, x.shape),
    await onlyLayout.forward(x.x, x.shape),
  ];
  for (const [name, logits] of [["all off", b], ["only channels-last", c]] as const) {
    const rel = maxAbsDiff(logits, a) / Math.max(...a.map(Math.abs));
    assert.ok(rel <= 1e-5, `${name}: logits differ from the default model's by ${rel} (relative)`);
  }
  assert.notDeepEqual(b, a, "the all-off model ran other kernels, so its logits are not the same bits");
  const calls = [fast.kernelCalls(), plain.kernelCalls(), onlyLayout.kernelCalls()];
  assert.ok(
    calls[0].fusedGroupNorm > 0 && calls[0].convRewrites > 0 && calls[0].channelsLast > 0,
    JSON.stringify(calls[0]),
  );
  assert.deepEqual(calls[1], { fusedGroupNorm: 0, convRewrites: 0, channelsLast: 0 });
  assert.deepEqual(calls[2], { fusedGroupNorm: 0, convRewrites: 0, channelsLast: calls[0].channelsLast });
  assert.deepEqual(await fast.forward(x.x, x.shape), a, "the default model is unchanged by the others' runs");
});
