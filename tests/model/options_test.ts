import assert from "node:assert/strict";
import { z } from "zod";
import {
  HybridNetOptionsSchema,
  lossClassIssue,
  NativeLossSchema,
  toNativeLossConfig,
  toNativeModelConfig,
  toNativeTrainerConfig,
  TrainerOptionsSchema,
} from "../../ts/model/options.ts";

Deno.test("model options: defaults fill every field of the hn_model_new JSON", () => {
  assert.deepEqual(toNativeModelConfig(HybridNetOptionsSchema.parse({})), {
    num_classes: 8,
    input_channels: 3,
    dropout_rate: 0.3,
    fpn: "skip",
    seed: 0,
  });
  assert.deepEqual(
    toNativeModelConfig(
      HybridNetOptionsSchema.parse({ numClasses: 2, inputChannels: 1, fpn: "seed", seed: 7 }),
    ),
    { num_classes: 2, input_channels: 1, dropout_rate: 0.3, fpn: "seed", seed: 7 },
  );
});

Deno.test("model options: bad values fail with the path of the field", () => {
  const rows: [unknown, string, string][] = [
    [{ numClasses: 1 }, "numClasses", "needs at least 2 classes"],
    [{ numClasses: 2.5 }, "numClasses", "integer"],
    [{ inputChannels: 5 }, "inputChannels", "at most 4"],
    [{ dropoutRate: 1 }, "dropoutRate", "below 1"],
    [{ fpn: "full" }, "fpn", "skip|seed"],
    [{ seed: -1 }, "seed", "non-negative"],
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
      lr: 1e-4,
      betas: [0.9, 0.999],
      eps: 1e-8,
      weight_decay: 0,
      momentum: 0.9,
      nesterov: false,
    },
    clip_grad_norm: null,
    seed: 0,
    trainable: "all",
  });
  assert.equal(toNativeTrainerConfig(TrainerOptionsSchema.parse({ trainable: "head" })).trainable, "head");
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

Deno.test("loss options: snake_case JSON and per-class checks", () => {
  assert.deepEqual(toNativeLossConfig(NativeLossSchema.parse({})), {
    kind: "cross_entropy",
    gamma: 1,
    alpha: null,
    class_mask: null,
  });
  const focal = NativeLossSchema.parse({ kind: "focal", gamma: 2, alpha: [1, 2], classMask: [1, 0] });
  assert.deepEqual(toNativeLossConfig(focal), { kind: "focal", gamma: 2, alpha: [1, 2], class_mask: [1, 0] });
  assert.equal(lossClassIssue(focal, 2), null);
  assert.match(lossClassIssue(focal, 3)!, /alpha has 2 entries/);
  assert.match(lossClassIssue(NativeLossSchema.parse({ classMask: [0, 0] }), 2)!, /every class/);
  assert.equal(NativeLossSchema.safeParse({ classMask: [2] }).success, false);
  assert.equal(NativeLossSchema.safeParse({ gamma: -1 }).success, false);
});
