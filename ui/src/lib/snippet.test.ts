import { describe, expect, it } from "vitest";
import { snippetParts } from "./snippet";

describe("search snippets", () => {
  it("splits matches from the rest", () => {
    expect(snippetParts("…the \u0002lunch\u0003 at \u0002noon\u0003")).toEqual([
      { text: "…the ", match: false },
      { text: "lunch", match: true },
      { text: " at ", match: false },
      { text: "noon", match: true },
    ]);
    expect(snippetParts("")).toEqual([]);
    expect(snippetParts("<b>plain</b>")).toEqual([{ text: "<b>plain</b>", match: false }]);
  });
});
