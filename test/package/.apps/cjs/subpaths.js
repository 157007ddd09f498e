/**
 * require()s every subpath keepsake exports and import()s it too; prints, per subpath, whether both
 * gave the same module (the same functions and classes: one instance, no dual-package hazard) or the
 * error require() threw.
 */
'use strict';
const { exports: entries } = require('keepsake/package.json');

async function main() {
  const results = [];
  for (const subpath of Object.keys(entries)) {
    if (subpath === './package.json') continue;
    const specifier = `keepsake${subpath.slice(1)}`;
    try {
      const required = require(specifier);
      const imported = await import(specifier);
      const names = Object.keys(imported);
      const same =
        names.length > 0 &&
        names.length === Object.keys(required).length &&
        names.every((name) => required[name] === imported[name]);
      results.push({ specifier, same });
    } catch (error) {
      results.push({ specifier, code: error.code, message: error.message });
    }
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
