// Validates custom resources (Argo CD, Argo Rollouts, Prometheus Operator, VPA) against the
// schemas the @kubernetes-models packages carry, as strictly as an API server with strict
// field validation:
//   - each package's own validator (types, required fields, enums, patterns), and
//   - the package's TypeScript type of the resource, checked by the TypeScript compiler
//     on the object as a literal: its excess-property check refuses unknown fields, which
//     the validators let pass.
//
// Reads a JSON array of objects on stdin; writes a JSON array of
// {kind, name, errors: [...]} on stdout, one entry per object, in order.

import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PACKAGES = {
  "argoproj.io": ["@kubernetes-models/argo-cd", "@kubernetes-models/argo-rollouts"],
  "monitoring.coreos.com": ["@kubernetes-models/prometheus-operator"],
  "autoscaling.k8s.io": ["@kubernetes-models/autoscaler"],
};

/** The model class of a resource and the module it comes from, or null. */
async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.split("/");
  for (const pkg of PACKAGES[group] ?? []) {
    const specifier = `${pkg}/${group}/${version}/${kind}`;
    try {
      const module = await import(specifier);
      if (module[kind]) return { Model: module[kind], specifier };
    } catch (error) {
      if (error.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED" && error.code !== "ERR_MODULE_NOT_FOUND") {
        throw error;
      }
    }
  }
  return null;
}

/** TypeScript's verdict on each object as a literal of its type: errors by object index. */
function typeErrors(typed) {
  const lines = [];
  typed.forEach(({ specifier, kind }, i) => {
    lines.push(`import type { I${kind} as T${i} } from ${JSON.stringify(specifier)};`);
  });
  const first = lines.length;
  typed.forEach(({ object }, i) => lines.push(`export const o${i}: T${i} = ${JSON.stringify(object)};`));
  const fileName = path.join(HERE, "__objects__.ts");
  const text = lines.join("\n");
  const options = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, language, ...rest) =>
    name === fileName
      ? ts.createSourceFile(name, text, language)
      : getSourceFile.call(host, name, language, ...rest);
  host.fileExists = (name) => name === fileName || fileExists.call(host, name);
  host.readFile = (name) => (name === fileName ? text : readFile.call(host, name));
  const program = ts.createProgram([fileName], options, host);
  const errors = typed.map(() => []);
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, " ");
    if (diagnostic.file?.fileName !== fileName) throw new Error(`type check: ${message}`);
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    if (line < first) throw new Error(`type check: ${message}`);
    errors[line - first].push(message);
  }
  return errors;
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
const objects = JSON.parse(input);
const results = [];
const typed = [];
for (const object of objects) {
  const result = { kind: object?.kind, name: object?.metadata?.name, errors: [] };
  results.push(result);
  const found = await modelFor(object?.apiVersion ?? "", object?.kind ?? "");
  if (found === null) {
    result.errors.push(`no schema for ${object?.apiVersion} ${object?.kind}`);
    continue;
  }
  try {
    new found.Model(object).validate();
  } catch (error) {
    result.errors.push(...String(error.message).split(/,\s*(?=data\/)/));
  }
  typed.push({ specifier: found.specifier, kind: object.kind, object, result });
}
typeErrors(typed).forEach((errors, i) => typed[i].result.errors.push(...errors));
process.stdout.write(JSON.stringify(results));
