package dev.edgeomd.demo;

import java.io.File;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import ai.onnxruntime.OnnxJavaType;
import dev.edgeomd.HeadException;
import dev.edgeomd.HeadManifest;
import dev.edgeomd.TextEncoder;

/**
 * An exported feature head (edge-omd export: manifest.json + ONNX graph + tokenizer.json) run
 * with ONNX Runtime for Android: text -> tokens (the core's plain-Java tokenizer, the manifest's
 * template and truncation) -> graph -> phi (d floats per response, pooled and normalised inside
 * the graph). Execution providers: NNAPI where the device has it, else XNNPACK, else the CPU.
 */
final class OnnxFeatureHead implements AutoCloseable {
    final HeadManifest manifest;
    final TextEncoder encoder;
    final String provider;
    private final OrtEnvironment env;
    private final OrtSession session;

    OnnxFeatureHead(Path folder) throws Exception {
        manifest = HeadManifest.load(folder);
        manifest.verify(folder);  // files and settings still those the fingerprint names
        encoder = manifest.textEncoder(folder);
        env = OrtEnvironment.getEnvironment();
        String graph = new File(folder.toFile(), manifest.graphFiles[0]).getPath();  // external data beside it
        OrtSession s = null;
        String used = null;
        for (String p : new String[]{"NNAPI", "XNNPACK", "CPU"}) {
            OrtSession.SessionOptions o = new OrtSession.SessionOptions();
            try {
                if (p.equals("NNAPI")) {
                    o.addNnapi();
                } else if (p.equals("XNNPACK")) {
                    Map<String, String> opts = new HashMap<>();
                    opts.put("intra_op_num_threads", "2");
                    o.addXnnpack(opts);
                }
                s = env.createSession(graph, o);
                used = p;
                break;
            } catch (OrtException | RuntimeException e) {
                o.close();  // provider missing on this device/build or graph unsupported by it: next one
            }
        }
        if (s == null) {
            throw new HeadException("ONNX Runtime could not load " + graph);
        }
        session = s;
        provider = used;
    }

    /**
     * phi of each response to the prompt, (n, manifest.featureDim()) float64: the graph's d
     * features followed by the head's views, style block then wording view, when it has them
     * (HeadManifest.features, as Python's FeatureHead.features).
     */
    double[][] features(String prompt, List<String> responses) throws Exception {
        return manifest.features(graphFeatures(prompt, responses), responses);
    }

    /** The graph's output for each response to the prompt, (n, d). */
    private double[][] graphFeatures(String prompt, List<String> responses) throws Exception {
        List<String[]> pairs = new ArrayList<>();
        for (String r : responses) {
            pairs.add(new String[]{prompt, r});
        }
        int[] ss = manifest.staticShape;
        if (ss == null) {
            return run(encoder.encodeBatch(pairs, true, 0));
        }
        // a static-shape (QDQ) graph takes exactly ss[0] rows of ss[1] tokens
        double[][] out = new double[pairs.size()][];
        for (int i = 0; i < pairs.size(); i += ss[0]) {
            List<String[]> chunk = new ArrayList<>(pairs.subList(i, Math.min(pairs.size(), i + ss[0])));
            int real = chunk.size();
            while (chunk.size() < ss[0]) {
                chunk.add(chunk.get(real - 1));
            }
            double[][] f = run(encoder.encodeBatch(chunk, true, ss[1]));
            System.arraycopy(f, 0, out, i, real);
        }
        return out;
    }

    private double[][] run(TextEncoder.Batch b) throws OrtException, HeadException {
        Map<String, OnnxTensor> in = new HashMap<>();
        try {
            for (String name : manifest.inputs) {
                if (name.equals("input_ids")) {
                    in.put(name, OnnxTensor.createTensor(env, b.ids));
                } else if (name.equals("attention_mask")) {
                    in.put(name, OnnxTensor.createTensor(env, b.mask));
                } else if (name.equals("pool_mask")) {   // "response_mean" heads
                    in.put(name, OnnxTensor.createTensor(env, b.pool));
                } else {
                    throw new HeadException("unknown graph input '" + name + "' in the manifest");
                }
            }
            try (OrtSession.Result r = session.run(in, Collections.singleton(manifest.output))) {
                OnnxValue v = r.get(0);
                OnnxTensor t = (OnnxTensor) v;
                long[] shape = ((TensorInfo) t.getInfo()).getShape();
                int n = (int) shape[0], d = (int) shape[1];
                if (d != manifest.d) {
                    throw new HeadException("the graph gives " + d + " features, the manifest says " + manifest.d);
                }
                double[][] out = new double[n][d];
                if (((TensorInfo) t.getInfo()).type == OnnxJavaType.FLOAT16) {
                    ShortBuffer h = t.getShortBuffer();
                    for (int i = 0; i < n; i++) {
                        for (int j = 0; j < d; j++) {
                            out[i][j] = halfToFloat(h.get(i * d + j));
                        }
                    }
                } else {
                    FloatBuffer f = t.getFloatBuffer();
                    for (int i = 0; i < n; i++) {
                        for (int j = 0; j < d; j++) {
                            out[i][j] = f.get(i * d + j);
                        }
                    }
                }
                return out;
            }
        } finally {
            for (OnnxTensor t : in.values()) {
                t.close();
            }
        }
    }

    static float halfToFloat(short h) {
        int bits = h & 0xffff;
        int sign = (bits & 0x8000) << 16, exp = (bits >>> 10) & 0x1f, mant = bits & 0x3ff;
        if (exp == 0x1f) {
            return Float.intBitsToFloat(sign | 0x7f800000 | (mant << 13));
        }
        if (exp == 0) {
            if (mant == 0) {
                return Float.intBitsToFloat(sign);
            }
            float v = mant / 1024f * (float) Math.pow(2, -14);
            return sign != 0 ? -v : v;
        }
        return Float.intBitsToFloat(sign | ((exp - 15 + 127) << 23) | (mant << 13));
    }

    @Override
    public void close() throws OrtException {
        session.close();
    }
}
