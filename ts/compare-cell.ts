/**
 * The child process of `compare --parallel N`: runs one cell (ts/pipeline/compare-cells.ts) given
 * as JSON in the first argument and reports on stdout with tagged lines.
 */
import { type CellJob, CHILD_RESULT, CHILD_STARTED, runCellInProcess } from "./pipeline/compare-cells.ts";

const job = JSON.parse(Deno.args[0] ?? "null") as CellJob | null;
if (job === null) {
  console.error("compare-cell: started without a job (it is started by `deno task compare --parallel N`)");
  Deno.exit(2);
}
try {
  const result = await runCellInProcess(job, (dir, classNames) => {
    console.log(`${CHILD_STARTED} ${JSON.stringify({ dir, classNames })}`);
    return Promise.resolve();
  });
  console.log(`${CHILD_RESULT} ${JSON.stringify(result)}`);
} catch (err) {
  console.error(err instanceof Error ? err.message : String(err));
  Deno.exit(1);
}
