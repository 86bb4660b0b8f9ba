// The "env" imports of the filter (the Proxy-Wasm ABI) when its unit tests run in Node.js under
// wasm-bindgen-test (`make test-wasm-bindgen`): those tests never call the proxy, so every import
// is a function that fails loudly if one ever does.
module.exports = new Proxy(
  {},
  {
    get: (_, name) => () => {
      throw new Error(`${String(name)}: no Proxy-Wasm host in the pure-logic tests`);
    },
  },
);
