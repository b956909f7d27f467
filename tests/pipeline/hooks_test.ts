import assert from "node:assert/strict";
import { type Callback, runPipeline } from "../../ts/pipeline/runner.ts";
import { configIn, syntheticYaml } from "./helpers.ts";

/** Records every hook call by name (Lightning's HookedCallback). */
class RecordingCallback implements Callback {
  calls: string[] = [];
  onFitStart(): void {
    this.calls.push("onFitStart");
  }
  onStageChange(): void {
    this.calls.push("onStageChange");
  }
  onTrainEpochStart(): void {
    this.calls.push("onTrainEpochStart");
  }
  onTrainBatchEnd(): void {
    this.calls.push("onTrainBatchEnd");
  }
  onTrainEpochEnd(): void {
    this.calls.push("onTrainEpochEnd");
  }
  onValidationStart(): void {
    this.calls.push("onValidationStart");
  }
  onValidationEnd(): void {
    this.calls.push("onValidationEnd");
  }
  onEpochEnd(): void {
    this.calls.push("onEpochEnd");
  }
  onCheckpointSave(): void {
    this.calls.push("onCheckpointSave");
  }
  onFitEnd(): void {
    this.calls.push("onFitEnd");
  }
  onException(): void {
    this.calls.push("onException");
  }
}

Deno.test("hooks: exact order over a 2-epoch run with a curriculum stage change", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hn-hooks-" });
  try {
    const config = await configIn(
      dir,
      syntheticYaml({
        perClass: 8,
        valPerClass: 2,
        epochs: 2,
        extra: "stage:\n  name: curriculum\n  stages: [[0, 1], [0, 1, 2, 3]]\n  epochs: [1]\n",
      }),
      ["train.maxStepsPerEpoch=2", "train.batchSize=4"],
    );
    const rec = new RecordingCallback();
    await runPipeline(config, { out: dir, callbacks: [rec], console: false });
    const epoch = [
      "onStageChange",
      "onTrainEpochStart",
      "onTrainBatchEnd",
      "onTrainBatchEnd",
      "onTrainEpochEnd",
      "onValidationStart",
      "onValidationEnd",
      "onEpochEnd",
      "onCheckpointSave",
    ];
    assert.deepEqual(rec.calls, ["onFitStart", ...epoch, ...epoch, "onFitEnd"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hooks: onException runs and the error is re-thrown", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hn-hooks-" });
  try {
    const config = await configIn(dir, syntheticYaml({ perClass: 4, valPerClass: 1, epochs: 1 }), [
      "train.maxStepsPerEpoch=1",
      "train.batchSize=4",
    ]);
    const rec = new RecordingCallback();
    const boom: Callback = {
      onTrainEpochEnd(): void {
        throw new Error("boom");
      },
    };
    await assert.rejects(runPipeline(config, { out: dir, callbacks: [rec, boom], console: false }), /boom/);
    assert.equal(rec.calls.at(-1), "onException");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
