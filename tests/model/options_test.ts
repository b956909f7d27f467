import assert from "node:assert/strict";
import { z } from "zod";
import { createModel, createTrainer } from "../../ts/model/hybridnet.ts";
import {
  DEFAULT_LR,
  type HybridNetOptionsInput,
  HybridNetOptionsSchema,
  lossClassIssue,
  MAX_CLASSES,
  MAX_INPUT_CHANNELS,
  NativeLossSchema,
  OptimizerOptionsSchema,
  toNativeLossConfig,
  toNativeModelConfig,
  toNativeTrainerConfig,
  type TrainerOptionsInput,
  TrainerOptionsSchema,
} from "../../ts/model/options.ts";

const ALL_KERNELS = { fused_group_norm: true, conv_rewrites: true, channels_last: true };

Deno.test("model options: defaults fill every field of the hn_model_new JSON", () => {
  assert.deepEqual(toNativeModelConfig(HybridNetOptionsSchema.parse({})), {
    num_classes: 8,
    input_channels: 3,
    dropout_rate: 0.3,
    fpn: "skip",
    seed: 0,
    kernels: ALL_KERNELS,
    device: "cpu",
  });
  assert.deepEqual(
    toNativeModelConfig(
      HybridNetOptionsSchema.parse({
        numClasses: 2,
        inputChannels: 1,
        fpn: "seed",
        seed: 7,
        kernels: { convRewrites: false },
      }),
    ),
    {
      num_classes: 2,
      input_channels: 1,
      dropout_rate: 0.3,
      fpn: "seed",
      seed: 7,
      kernels: { ...ALL_KERNELS, conv_rewrites: false },
      device: "cpu",
    },
  );
  // On CUDA the CPU-only kernels are off whatever the options say (Rust turns them off too).
  assert.deepEqual(toNativeModelConfig(HybridNetOptionsSchema.parse({ device: "cuda:1" })).kernels, {
    fused_group_norm: false,
    conv_rewrites: false,
    channels_last: true,
  });
});

Deno.test("model options: bad values fail with the path of the field", () => {
  const rows: [unknown, string, string][] = [
    [{ numClasses: 1 }, "numClasses", "needs at least 2 classes"],
    [{ numClasses: MAX_CLASSES + 1 }, "numClasses", "at most MAX_CLASSES (Rust's limit)"],
    [{ numClasses: 2.5 }, "numClasses", "integer"],
    [{ inputChannels: 0 }, "inputChannels", "at least 1"],
    [{ inputChannels: MAX_INPUT_CHANNELS + 1 }, "inputChannels", "at most MAX_INPUT_CHANNELS (Rust's limit)"],
    [{ kernels: { fusedGroupNorm: 1 } }, "kernels.fusedGroupNorm", "a boolean"],
    [{ kernels: { cuda: true } }, "kernels", "unknown kernel option"],
    [{ dropoutRate: 1 }, "dropoutRate", "below 1"],
    [{ fpn: "full" }, "fpn", "skip|seed"],
    [{ seed: -1 }, "seed", "non-negative"],
    [{ device: "cuda" }, "device", "the native layer takes cuda:N (the session resolves cuda)"],
    [{ device: "auto" }, "device", "the session resolves auto"],
    [{ device: "cuda:-1" }, "device", "an ordinal"],
    [{ numclasses: 8 }, "", "unknown keys rejected"],
  ];
  for (const [input, path, why] of rows) {
    const r = HybridNetOptionsSchema.safeParse(input);
    assert.equal(r.success, false, `${JSON.stringify(input)} should fail: ${why}`);
    assert.equal(r.error!.issues[0].path.join("."), path, why);
  }
});

Deno.test("trainer options: nested defaults fill the hn_trainer_new JSON", () => {
  assert.deepEqual(toNativeTrainerConfig(TrainerOptionsSchema.parse({})), {
    optimizer: {
      kind: "adam",
      lr: DEFAULT_LR,
      betas: [0.9, 0.999],
      eps: 1e-8,
      weight_decay: 0,
      momentum: 0.9,
      nesterov: false,
      fused: true,
    },
    clip_grad_norm: null,
    seed: 0,
    trainable: "all",
    ema: null,
    precision: "fp32",
  });
  assert.equal(toNativeTrainerConfig(TrainerOptionsSchema.parse({ precision: "bf16" })).precision, "bf16");
  assert.throws(() => TrainerOptionsSchema.parse({ precision: "fp16" }));
  assert.equal(toNativeTrainerConfig(TrainerOptionsSchema.parse({ trainable: "head" })).trainable, "head");
  assert.deepEqual(toNativeTrainerConfig(TrainerOptionsSchema.parse({ ema: {} })).ema, {
    decay: 0.999,
    warmup_steps: 0,
  });
  assert.throws(() => TrainerOptionsSchema.parse({ trainable: "neck" }));
  const cfg = toNativeTrainerConfig(
    TrainerOptionsSchema.parse({ optimizer: { kind: "sgd", lr: 0.1, nesterov: true }, clipGradNorm: 5 }),
  );
  assert.deepEqual(cfg.optimizer, {
    kind: "sgd",
    lr: 0.1,
    betas: [0.9, 0.999],
    eps: 1e-8,
    weight_decay: 0,
    momentum: 0.9,
    nesterov: true,
    fused: true,
  });
  assert.equal(cfg.clip_grad_norm, 5);
});

Deno.test("trainer options: a bad lr keeps its path (optimizer.lr)", () => {
  const r = TrainerOptionsSchema.safeParse({ optimizer: { lr: 0 } });
  assert.equal(r.success, false);
  assert.ok(r.error instanceof z.ZodError);
  assert.equal(r.error.issues[0].path.join("."), "optimizer.lr");
  assert.equal(TrainerOptionsSchema.safeParse({ clipGradNorm: 0 }).success, false);
  assert.equal(TrainerOptionsSchema.safeParse({ optimizer: { kind: "rmsprop" } }).success, false);
});

Deno.test("EMA options: the ranges Rust's EmaConfig::validate accepts, paths kept", () => {
  const rows: [unknown, boolean, string][] = [
    [{ decay: 0.5, warmupSteps: 10 }, true, "both given"],
    [{ decay: 0 }, false, "decay must be > 0"],
    [{ decay: 1 }, false, "decay must be < 1"],
    [{ decay: 1e-9 }, true, "any decay in (0, 1)"],
    [{ warmupSteps: -1 }, false, "warmupSteps >= 0"],
    [{ warmupSteps: 1.5 }, false, "warmupSteps is an integer"],
    [{ warmup_steps: 1 }, false, "unknown keys rejected"],
  ];
  for (const [input, ok, why] of rows) {
    const r = TrainerOptionsSchema.safeParse({ ema: input });
    assert.equal(r.success, ok, `${JSON.stringify(input)}: ${why}`);
    if (!ok) assert.equal(r.error!.issues[0].path[0], "ema", why);
  }
});

Deno.test("loss options: snake_case JSON and per-class checks", () => {
  assert.deepEqual(toNativeLossConfig(NativeLossSchema.parse({})), {
    kind: "cross_entropy",
    gamma: 1,
    alpha: null,
    class_mask: null,
  });
  const focal = NativeLossSchema.parse({ kind: "focal", gamma: 2, alpha: [1, 2], classMask: [1, 0] });
  assert.deepEqual(toNativeLossConfig(focal), { kind: "focal", gamma: 2, alpha: [1, 2], class_mask: [1, 0] });
  assert.equal(lossClassIssue(toNativeLossConfig(focal), 2), null);
  assert.match(lossClassIssue(toNativeLossConfig(focal), 3)!, /alpha has 2 entries/);
  assert.match(
    lossClassIssue(toNativeLossConfig(NativeLossSchema.parse({ classMask: [0, 0] })), 2)!,
    /every class/,
  );
  assert.equal(NativeLossSchema.safeParse({ classMask: [2] }).success, false);
  assert.equal(NativeLossSchema.safeParse({ gamma: -1 }).success, false);
});

/**
 * Optimizer ranges, row by row; Rust's `OptimizerConfig::validate` has the same table
 * (native/src/train/optim.rs), and the round trip below sends accepted rows to Rust.
 */
Deno.test("optimizer options: the ranges Rust's validate accepts, no more and no less", () => {
  const rows: [unknown, boolean, string][] = [
    [{ lr: 0 }, false, "lr must be > 0"],
    [{ lr: -1 }, false, "lr must be > 0"],
    [{ lr: 1e-300 }, true, "any positive lr"],
    [{ lr: Infinity }, false, "lr must be finite"],
    [{ betas: [0, 0] }, true, "betas may be 0"],
    [{ betas: [1, 0.5] }, false, "betas[0] must be < 1"],
    [{ betas: [0.5, 1] }, false, "betas[1] must be < 1"],
    [{ betas: [-0.1, 0.5] }, false, "betas must be >= 0"],
    [{ eps: 0 }, false, "eps must be > 0"],
    [{ eps: 1e-30 }, true, "any positive eps"],
    [{ weightDecay: 0 }, true, "weight decay may be 0"],
    [{ weightDecay: -0.1 }, false, "weight decay must be >= 0"],
    [{ kind: "sgd", momentum: 0 }, true, "momentum may be 0"],
    [{ kind: "sgd", momentum: 1 }, false, "momentum must be < 1"],
    [{ kind: "sgd", momentum: -0.5 }, false, "momentum must be >= 0"],
    [{ kind: "sgd", momentum: 0, nesterov: true }, false, "nesterov needs momentum"],
    [{ kind: "sgd", momentum: 0.5, nesterov: true }, true, "nesterov with momentum"],
    [{ fused: false }, true, "the tensor path"],
    [{ fused: 0 }, false, "fused is a boolean"],
  ];
  for (const [input, ok, why] of rows) {
    const r = OptimizerOptionsSchema.safeParse(input);
    assert.equal(r.success, ok, `${JSON.stringify(input)}: ${why}`);
  }
  const r = OptimizerOptionsSchema.safeParse({ momentum: 0, nesterov: true });
  assert.equal(r.error!.issues[0].path.join("."), "nesterov");
});

Deno.test("round trip: what TS sends is what Rust decodes, for default and non-default options", () => {
  const models: HybridNetOptionsInput[] = [
    {},
    {
      numClasses: 5,
      inputChannels: 1,
      dropoutRate: 0,
      fpn: "seed",
      seed: 2 ** 40 + 3,
      kernels: { fusedGroupNorm: false, convRewrites: true, channelsLast: false },
    },
    { numClasses: 3, inputChannels: 4, dropoutRate: 0.55, kernels: { convRewrites: false } },
  ];
  const trainers: TrainerOptionsInput[] = [
    {},
    {
      optimizer: {
        kind: "adamw",
        lr: 0.0123,
        betas: [0.5, 0.75],
        eps: 1e-6,
        weightDecay: 0.05,
        momentum: 0,
        nesterov: false,
        fused: false,
      },
      clipGradNorm: 2.5,
      seed: 9_007_199_254_740_991,
      trainable: "head",
      ema: { decay: 0.9995, warmupSteps: 9_007_199_254_740_991 },
    },
    { optimizer: { kind: "sgd", lr: 0.1, momentum: 0.95, nesterov: true, weightDecay: 1e-4 }, ema: {} },
  ];
  for (const options of models) {
    using model = createModel(options);
    const sent = toNativeModelConfig(HybridNetOptionsSchema.parse(options));
    assert.deepEqual(model.describe().config, sent, `model ${JSON.stringify(options)}`);
    for (const t of trainers) {
      const trainer = createTrainer(model, t);
      const tSent = toNativeTrainerConfig(TrainerOptionsSchema.parse(t));
      assert.deepEqual(trainer.describe().config, tSent, `trainer ${JSON.stringify(t)}`);
      trainer.close();
    }
  }
});
