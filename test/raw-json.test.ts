import { describe, expect, test } from "vitest";
import { rawMember } from "../src/rpc/raw-json.ts";

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

  test("the raw text always parses to the same value as JSON.parse", () => {
    const doc = {
      params: { data: { list: [1, "two", { three: [null, false] }], s: "a,b}c]" }, amount: "1" },
    };
    const text = JSON.stringify(doc, null, 3);
    expect(JSON.parse(rawMember(text, ["params", "data"]) as string)).toEqual(doc.params.data);
  });
});
