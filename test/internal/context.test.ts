import { describe, expect, test } from "vitest";
import { createTaskContext } from "../../src/internal/context.ts";

describe("task context", () => {
  test("overlapping chains each see their own value, through awaits; none is left once they end", async () => {
    const context = createTaskContext<string>();
    const tick = () => new Promise((resolve) => setTimeout(resolve, 5));
    const seen: string[] = [];
    let releaseA = () => {};
    const gate = new Promise<void>((resolve) => {
      releaseA = resolve;
    });
    const a = context.run("a", async () => {
      await gate;
      seen.push(`a:${context.get()}`);
    });
    const b = context.run("b", async () => {
      await tick();
      seen.push(`b:${context.get()}`);
      // A's chain is still running: ending B must not take A's value away.
      return "b done";
    });
    expect(await b).toBe("b done");
    releaseA();
    await a;
    expect(seen).toEqual(["b:b", "a:a"]);
    expect(context.get()).toBeUndefined();
    expect(await context.run("c", async () => context.exit(() => context.get()))).toBeUndefined();
    // A run that throws ends too, and the next one still carries its value.
    await expect(context.run("d", async () => Promise.reject(new Error("boom")))).rejects.toThrow(
      "boom",
    );
    expect(await context.run("e", async () => context.get())).toBe("e");
  });
});
