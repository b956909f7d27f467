import assert from "node:assert/strict";
import type { PluginModule } from "../../ts/pipeline/types.ts";
import type { ClassCountAwareStage } from "../../ts/plugins/stage/common.ts";
import { curriculumIssues, plugin as curriculum } from "../../ts/plugins/stage/curriculum.ts";
import { plugin as none } from "../../ts/plugins/stage/none.ts";

const ctx = { configDir: ".", seed: 0, epochs: 10, log: (): void => {} };
function make(mod: PluginModule, cfg: Record<string, unknown> = {}): ClassCountAwareStage {
  return mod.create(mod.configSchema.parse(cfg), ctx) as ClassCountAwareStage;
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
  assert.deepEqual(make(curriculum).plan(100, []).activeClasses, [0, 1, 6, 7]);
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
    const problems = curriculumIssues(curriculum.configSchema.parse(cfg), k);
    if (want.length === 0) assert.deepEqual(problems, [], msg);
    else assert.ok(problems.length >= want.length, `${msg}: ${problems.join("; ")}`);
    for (const re of want) {
      assert.ok(problems.some((p) => re.test(p)), `${msg}: no message matches ${re}: ${problems.join("; ")}`);
    }
  }
  assert.equal(make(curriculum).validate(5).length, 9, "one message per out-of-range class per stage");
  assert.deepEqual(make(curriculum).validate(5), curriculumIssues(curriculum.configSchema.parse({}), 5));
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
