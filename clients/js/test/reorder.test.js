// Ordering without a gateway: frames past a gap wait, within a bounded window.
import { test } from "node:test";
import assert from "node:assert/strict";
import { REORDER_WINDOW, Run } from "../selador.js";

test("frames past a gap wait for it, and frames too far past it are dropped until a resume", () => {
  const quietClient = { _resumeMs: 0, sessionToken: null, state: "closed" };
  const run = new Run(quietClient, "r-1", null);
  run._receive({ type: "status", stage: "routed", seq: 1, request_id: "r-1" });
  run._receive({ type: "delta", content: "b", seq: 3, request_id: "r-1" });
  run._receive({ type: "delta", content: "far", seq: 2 + REORDER_WINDOW, request_id: "r-1" });
  assert.equal(run._buffer.size, 1, "only the frame within the window waits");
  run._receive({ type: "delta", content: "a", seq: 2, request_id: "r-1" });
  assert.deepEqual(
    run.frames.map((f) => f.seq),
    [1, 2, 3],
  );
  run._receive({ type: "delta", content: "again", seq: 2, request_id: "r-1" });
  assert.equal(run.duplicates, 1);
});
