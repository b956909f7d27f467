import assert from "node:assert/strict";
import type { PluginModule } from "../../ts/pipeline/types.ts";
import type { ClassCountAwareStage } from "../../ts/plugins/stage/common.ts";
import { curriculumIssues, plugin as curriculum, stageLengths } from "../../ts/plugins/stage/curriculum.ts";
import { plugin as none } from "../../ts/plugins/stage/none.ts";

const ctx = { configDir: ".", seed: 0, epochs: 10, log: (): void => {} };
function make(mod: PluginModule, cfg: Record<string, unknown> = {}): ClassCountAwareStage {
  return mod.create(mod.configSchema.parse(cfg), ctx) as ClassCountAwareStage;
}

/** A curriculum for a run of `epochs` epochs, told its 8 classes. */
function plugins(epochs: number, cfg: Record<string, unknown>): ClassCountAwareStage {
  const st = curriculum.create(curriculum.configSchema.parse(cfg), {
    ...ctx,
    epochs,
  }) as ClassCountAwareStage;
  st.setNumClasses(8);
  return st;
}

Deno.test("curriculum: epoch -> stage and active classes (table)", () => {
  const st = make(curriculum, { epochs: [2, 3, 1] });
  st.setNumClasses(8);
  const rows: [epoch: number, stage: number, active: number[], msg: string][] = [
    [0, 0, [0, 7], "first epoch is stage 0"],
    [1, 0, [0, 7], "last epoch of stage 0"],
    [2, 1, [0, 1, 6, 7], "stage 1 starts after 2 epochs"],
    [4, 1, [0, 1, 6, 7], "last epoch of stage 1"],
    [5, 2, [0, 1, 2, 5, 6, 7], "stage 2 runs 1 epoch"],
    [6, 3, [0, 1, 2, 3, 4, 5, 6, 7], "last stage starts"],
    [399, 3, [0, 1, 2, 3, 4, 5, 6, 7], "last stage runs to the end"],
  ];
  for (const [epoch, stage, active, msg] of rows) {
    const p = st.plan(epoch, []);
    assert.equal(p.stageIndex, stage, `${msg} (epoch ${epoch})`);
    assert.deepEqual(p.activeClasses, active, `${msg} (epoch ${epoch})`);
    assert.equal(p.stageCount, 4, msg);
    assert.equal(p.maskInactive, true, msg);
  }
});

Deno.test("curriculum: defaults are the seed's stages; classes come out sorted; maskInactive option", () => {
  const st = make(curriculum, { stages: [[3, 1], [2, 0, 1, 3]], epochs: [1], maskInactive: false });
  assert.deepEqual(st.plan(0, []), {
    activeClasses: [1, 3],
    stageIndex: 0,
    stageCount: 2,
    maskInactive: false,
  });
  assert.deepEqual(st.plan(1, []).activeClasses, [0, 1, 2, 3]);
  const d = curriculum.configSchema.parse({});
  assert.deepEqual(d.stages, [[0, 7], [0, 1, 6, 7], [0, 1, 2, 5, 6, 7], [0, 1, 2, 3, 4, 5, 6, 7]]);
  // no lengths given: equal shares of the run (10 epochs here: 3, 3, 3, then 1 for all classes)
  assert.deepEqual([0, 3, 6, 9].map((e) => make(curriculum).plan(e, []).stageIndex), [0, 1, 2, 3]);
});

Deno.test("curriculum: shares scale the stages with the run; a last stage that never starts is refused", () => {
  const shares = { shares: [0.0625, 0.125, 0.1875] };
  const lengths = (runEpochs: number): number[] =>
    stageLengths(curriculum.configSchema.parse(shares), runEpochs);
  assert.deepEqual(
    lengths(400),
    [25, 50, 75],
    "the seed's 400 epochs: 25, 50, 75, then 250 for all 8 classes",
  );
  assert.deepEqual(lengths(20), [1, 3, 4], "20 epochs: rounded, then 12 for all classes");
  assert.deepEqual(lengths(4), [1, 1, 1], "every stage gets at least one epoch");
  const at20 = plugins(20, shares);
  assert.deepEqual([0, 1, 3, 4, 7, 8, 19].map((e) => at20.plan(e, []).stageIndex), [0, 1, 1, 2, 2, 3, 3]);
  const rows: [Record<string, unknown>, number, RegExp | null, string][] = [
    [
      { epochs: [25, 50, 75] },
      20,
      /last stage \(classes \[0,1,2,3,4,5,6,7\]\) would never start: the stages before it take 150 epochs of train\.epochs 20.*shares/,
      "fixed epochs in a short run",
    ],
    [{ epochs: [25, 50, 75] }, 400, null, "fixed epochs in the seed's run"],
    [
      shares,
      3,
      /would never start: .* 3 epochs of train\.epochs 3, .*; lower the shares or raise train\.epochs/,
      "too short even for one epoch per stage",
    ],
    [{ shares: [0.5, 0.3, 0.2] }, 100, /shares add up to 1/, "no share left for the last stage"],
    [{ shares: [0.1], epochs: [1] }, 100, /epochs or as shares, not both/, "both"],
    [{ shares: [0.1] }, 100, /need at least 3 entries in shares/, "too few shares"],
  ];
  for (const [cfg, runEpochs, want, msg] of rows) {
    const issues = plugins(runEpochs, cfg).validate(8);
    if (want === null) assert.deepEqual(issues, [], msg);
    else assert.ok(issues.some((i) => want.test(i)), `${msg}: ${issues.join("; ")}`);
  }
});

Deno.test("curriculum: validation messages", () => {
  const rows: [cfg: Record<string, unknown>, numClasses: number, want: RegExp[], msg: string][] = [
    [{}, 8, [], "the seed's stages fit 8 classes"],
    [{}, 5, [
      /stages\[0\] lists class 7, but the dataset has 5 classes \(0..4\)/,
      /stages\[1\] lists class 6/,
    ], "8-class stages on 5 classes"],
    [{ stages: [[0, 1], [0, 1, 2]], epochs: [3] }, 3, [], "fits"],
    [{ stages: [[0, 0], [0, 1]], epochs: [3] }, 3, [/stages\[0\] lists class 0 twice/], "duplicate class"],
  ];
  for (const [cfg, k, want, msg] of rows) {
    const problems = curriculumIssues(curriculum.configSchema.parse(cfg), k, 10);
    if (want.length === 0) assert.deepEqual(problems, [], msg);
    else assert.ok(problems.length >= want.length, `${msg}: ${problems.join("; ")}`);
    for (const re of want) {
      assert.ok(problems.some((p) => re.test(p)), `${msg}: no message matches ${re}: ${problems.join("; ")}`);
    }
  }
  assert.equal(make(curriculum).validate(5).length, 9, "one message per out-of-range class per stage");
  assert.deepEqual(make(curriculum).validate(5), curriculumIssues(curriculum.configSchema.parse({}), 5, 10));
  // create() and setNumClasses() do not throw (the refine layer collects validate()'s messages);
  // plan() refuses to run a curriculum with problems
  const short = make(curriculum, { stages: [[0], [1], [2]], epochs: [1] });
  assert.match(short.validate(3).join("\n"), /3 stages need at least 2 entries in epochs/);
  assert.throws(() => short.plan(0, []), /3 stages need at least 2 entries in epochs/);
  const dup = make(curriculum, { stages: [[0, 0], [0, 1]], epochs: [3] });
  assert.throws(() => dup.plan(0, []), /lists class 0 twice/);
  const tooMany = make(curriculum);
  tooMany.setNumClasses(4);
  assert.throws(() => tooMany.plan(0, []), /lists class 7, but the dataset has 4 classes/);
  assert.throws(() => curriculum.configSchema.parse({ stages: [[-1]] }));
});

Deno.test("curriculum: state is {} and loads back", () => {
  const st = make(curriculum, { epochs: [2, 3, 1] });
  st.setNumClasses(8);
  assert.equal(st.stateKey, "stage");
  assert.deepEqual(st.stateDict(), {});
  const plans = (s: ClassCountAwareStage): unknown[] => Array.from({ length: 8 }, (_, e) => s.plan(e, []));
  const before = plans(st);
  // a resumed run: a fresh instance given the saved state plans every epoch as the first did
  const resumed = make(curriculum, { epochs: [2, 3, 1] });
  resumed.setNumClasses(8);
  resumed.loadStateDict(JSON.parse(JSON.stringify(st.stateDict())));
  assert.deepEqual(plans(resumed), before);
  st.loadStateDict({});
  assert.deepEqual(plans(st), before, "loading {} changes nothing");
  assert.throws(() => st.loadStateDict(5), /must be an object/);
});

Deno.test("stage none: all classes every epoch, once the class count is known", () => {
  const st = make(none);
  assert.throws(() => st.plan(0, []), /setNumClasses/);
  st.setNumClasses(5);
  assert.deepEqual(st.plan(17, []), {
    activeClasses: [0, 1, 2, 3, 4],
    stageIndex: 0,
    stageCount: 1,
    maskInactive: false,
  });
  const fixed = make(none, { numClasses: 3 });
  assert.deepEqual(fixed.plan(0, []).activeClasses, [0, 1, 2]);
  assert.deepEqual(fixed.validate(3), []);
  assert.match(fixed.validate(4)[0], /numClasses is 3, but the dataset has 4 classes/);
  fixed.setNumClasses(4);
  assert.throws(() => fixed.plan(0, []), /numClasses is 3, but the dataset has 4 classes/);
});
