// Run a TF.js graph model (model.json + weight shards) on the pure-JS CPU backend: the reference
// for posezoo's TF.js -> ONNX converter tests.
//
//   node tfjs_run.js JOB.json
//
// JOB.json:
//   {"model": "path/model.json", "weights": ["shard.bin", ...] (manifest order; default: beside model.json),
//    "runs": [{"inputs": {"<node name>": {"file": "x.bin", "dtype": "int32" | "float32", "shape": [...]}},
//              "outputs": ["<node name>[:k]", ...],   (any node of the graph, intermediate ones included)
//              "prefix": "out/run0"}]}
// Each requested output is written as raw little-endian bytes to "<prefix>_<k>.bin"; the command prints
// one JSON line: {"runs": [[{"name", "file", "dtype", "shape"}, ...], ...], "ms": [...]} (ms: execute time).
// Nothing is downloaded: the model is loaded through an IOHandler that reads the local files.

'use strict';

const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const converter = require('@tensorflow/tfjs-converter');

const ARRAYS = { int32: Int32Array, float32: Float32Array, bool: Uint8Array };

function localHandler(modelPath, weightPaths) {
  return {
    load: async () => {
      const json = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
      const manifest = json.weightsManifest || [];
      const specs = [];
      const paths = [];
      for (const group of manifest) {
        specs.push(...group.weights);
        paths.push(...group.paths);
      }
      const files = weightPaths && weightPaths.length
        ? weightPaths
        : paths.map((p) => path.join(path.dirname(modelPath), p));
      const buffers = files.map((f) => fs.readFileSync(f));
      const all = Buffer.concat(buffers);
      const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
      return {
        modelTopology: json.modelTopology,
        weightSpecs: specs,
        weightData,
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
        signature: json.signature,
        userDefinedMetadata: json.userDefinedMetadata,
      };
    },
  };
}

function readInput(spec) {
  const Array_ = ARRAYS[spec.dtype];
  if (!Array_) throw new Error(`input dtype ${spec.dtype} is not supported`);
  const bytes = fs.readFileSync(spec.file);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  const values = new Array_(copy.buffer);
  return tf.tensor(values, spec.shape, spec.dtype);
}

async function main() {
  const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  await tf.setBackend('cpu');
  await tf.ready();
  const model = await converter.loadGraphModel(localHandler(job.model, job.weights));
  const weightIds = new Set(Object.values(model.weights).flat().map((t) => t.id));
  const results = [];
  const times = [];
  for (const run of job.runs) {
    const inputs = {};
    for (const [name, spec] of Object.entries(run.inputs)) inputs[name] = readInput(spec);
    const start = process.hrtime.bigint();
    let outputs;
    try {
      outputs = model.execute(inputs, run.outputs);
    } catch (err) { // graphs with control flow or dynamic shapes only run asynchronously
      if (!/executeAsync/.test(String(err && err.message))) throw err;
      outputs = await model.executeAsync(inputs, run.outputs);
    }
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
    if (!Array.isArray(outputs)) outputs = [outputs];
    const written = [];
    for (let k = 0; k < outputs.length; k++) {
      const t = outputs[k];
      const raw = await t.data();
      const Typed = ARRAYS[t.dtype];
      if (!Typed) throw new Error(`output ${run.outputs[k]} has dtype ${t.dtype}`);
      const data = raw instanceof Typed ? raw : Typed.from(raw); // a cast from bool keeps a Uint8Array
      const file = `${run.prefix}_${k}.bin`;
      fs.writeFileSync(file, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      written.push({ name: run.outputs[k], file, dtype: t.dtype, shape: t.shape });
      if (!weightIds.has(t.id)) t.dispose(); // a requested Const node is the model's own weight tensor
    }
    Object.values(inputs).forEach((t) => t.dispose());
    results.push(written);
  }
  process.stdout.write(JSON.stringify({ runs: results, ms: times }) + '\n');
}

main().catch((err) => {
  process.stderr.write(`tfjs_run: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
