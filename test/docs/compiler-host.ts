/**
 * A TypeScript compiler host whose declaration files are parsed once per process: every program
 * of the docs and typing tests shares them, so each further program costs its checking only.
 */
import ts from 'typescript';

const parsed = new Map<string, ts.SourceFile | undefined>();

/**
 * A host for a project at `dir`. Files for which `ownFile` is true (the files under test, which
 * change between programs) are read afresh each time; everything else comes from the cache.
 */
export function cachingHost(
  options: ts.CompilerOptions,
  dir: string,
  ownFile: (fileName: string) => boolean,
): ts.CompilerHost {
  const host = ts.createCompilerHost(options);
  host.getCurrentDirectory = () => dir;
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
    if (ownFile(fileName)) return getSourceFile(fileName, languageVersion, onError, shouldCreate);
    const key =
      typeof languageVersion === 'object'
        ? `${languageVersion.languageVersion}:${languageVersion.impliedNodeFormat}:${fileName}`
        : `${languageVersion}:${fileName}`;
    if (!parsed.has(key)) {
      parsed.set(key, getSourceFile(fileName, languageVersion, onError, shouldCreate));
    }
    return parsed.get(key);
  };
  return host;
}
