import { describe, expect, test } from "vitest";
import { RawJson, rawMember, stringifyJson } from "../../src/rpc/raw-json.ts";

describe("rawMember", () => {
  test.each([
    ['{"params":{"data":{"a":1}}}', '{"a":1}'],
    ['{"params":{"data": 12345678901234567890123 }}', "12345678901234567890123"],
    ['{"params":{"x":[{"data":1}],"data":"s\\"}"}}', '"s\\"}"'],
    ['{"params":{"data":[1, [2, {"data":3}]]}}', '[1, [2, {"data":3}]]'],
    ['{"params":{"data":1,"data":2}}', "2"],
    ['{"data":5,"params":{"amount":"1"}}', undefined],
    ['{"params":{"data":null}}', "null"],
    ['{"params":{"data":{}}}', "{}"],
    ['{"params":{"data":[]}}', "[]"],
    ['{"params":{"data":true}}', "true"],
    ['{"params":[{"data":1}]}', undefined],
    [' {\n "params" : {\n "data" : { "k" : "v" } \n } }', '{ "k" : "v" }'],
    ['{"par\\u0061ms":{"data":"escaped key"}}', '"escaped key"'],
  ])("%s → %s", (text, expected) => {
    JSON.parse(text);
    expect(rawMember(text, ["params", "data"])).toBe(expected);
  });

  test("the raw text always parses to the same value as JSON.parse", async () => {
    const doc = {
      params: { data: { list: [1, "two", { three: [null, false] }], s: "a,b}c]" }, amount: "1" },
    };
    const text = JSON.stringify(doc, null, 3);
    expect(JSON.parse(rawMember(text, ["params", "data"]) as string)).toEqual(doc.params.data);
  });

  test("array indexes find a call inside a batch", async () => {
    const text = '[{"params":{"data":1}}, 7, {"params":{"data": [2, {"x":3}] }}]';
    expect(rawMember(text, [0, "params", "data"])).toBe("1");
    expect(rawMember(text, [2, "params", "data"])).toBe('[2, {"x":3}]');
    expect(rawMember(text, [1, "params", "data"])).toBeUndefined();
    expect(rawMember(text, [3, "params", "data"])).toBeUndefined();
    // An object key "0" is not array index 0.
    expect(rawMember('{"0":{"params":{"data":5}}}', [0, "params", "data"])).toBeUndefined();
  });
});

describe("stringifyJson", () => {
  test("writes RawJson as its source text and everything else as JSON.stringify", async () => {
    const raw = new RawJson('{"b":1, "big":12345678901234567890123}');
    expect(stringifyJson({ a: "x", data: raw, list: [raw, null] })).toBe(
      `{"a":"x","data":${raw.text},"list":[${raw.text},null]}`,
    );
    expect(stringifyJson({ a: [1, "two"] })).toBe(JSON.stringify({ a: [1, "two"] }));
  });

  test("a string that looks like a marker stays a string", async () => {
    const tricky = { s: '"0:0"', t: "deadbeef:0" };
    expect(JSON.parse(stringifyJson({ ...tricky, d: new RawJson("1") }))).toEqual({
      ...tricky,
      d: 1,
    });
  });
});
