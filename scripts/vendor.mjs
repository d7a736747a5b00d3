// Refresh the vendored files from node_modules (run `npm ci` first, or `npm install PKG@VERSION`
// to move a pin), and write each destination's VENDOR.json with each file's version and sha256.
// tests/test_vendor.py checks the files against those manifests and against node_modules.
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

// destination folder -> package -> { file in the package: file in the destination }
const destinations = {
  // shipped with the page
  "static/vendor": {
    "eventsource-parser": {
      "dist/index.js": "eventsource-parser/index.js",
      "dist/parse.js": "eventsource-parser/parse.js",
      "dist/errors.js": "eventsource-parser/errors.js",
      LICENSE: "eventsource-parser/LICENSE",
    },
    marked: { "lib/marked.esm.js": "marked/marked.esm.js", LICENSE: "marked/LICENSE" },
    dompurify: { "dist/purify.es.mjs": "dompurify/purify.es.js", LICENSE: "dompurify/LICENSE" },
    // MSAL ships no single-file ES module (its ES build imports @azure/msal-common by bare name):
    // the pinned browser bundle, which js/auth.js loads only when the page signs users in.
    "@azure/msal-browser": {
      "lib/msal-browser.min.js": "msal-browser/msal-browser.min.js",
      LICENSE: "msal-browser/LICENSE",
    },
  },
  // the browser tests' accessibility checker, never shipped
  "tests/browser/vendor": {
    "axe-core": {
      "axe.min.js": "axe-core/axe.min.js",
      LICENSE: "axe-core/LICENSE",
      "LICENSE-3RD-PARTY.txt": "axe-core/LICENSE-3RD-PARTY.txt",
    },
  },
};

for (const [folder, packages] of Object.entries(destinations)) {
  const vendor = join(root, folder);
  const manifest = {};
  for (const [name, mapping] of Object.entries(packages)) {
    const packageDir = join(root, "node_modules", name);
    const { version } = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8"));
    const entries = {};
    for (const [source, target] of Object.entries(mapping)) {
      const destination = join(vendor, target);
      mkdirSync(dirname(destination), { recursive: true });
      copyFileSync(join(packageDir, source), destination);
      entries[target] = { source, sha256: createHash("sha256").update(readFileSync(destination)).digest("hex") };
    }
    manifest[name] = { version, files: entries };
  }
  writeFileSync(join(vendor, "VENDOR.json"), JSON.stringify(manifest, null, 2) + "\n");
  console.log(`${folder}: ${Object.entries(manifest).map(([name, { version }]) => `${name}@${version}`).join(", ")}`);
}
