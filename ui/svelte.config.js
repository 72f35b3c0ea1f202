// Svelte 5 compiles TypeScript annotations itself; no preprocessing needed.
export default {};
