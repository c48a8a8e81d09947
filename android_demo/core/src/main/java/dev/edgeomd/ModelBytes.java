package dev.edgeomd;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import java.util.OptionalLong;

/**
 * A RewardModel as state bytes (docs/STATE_FORMAT.md) and back, as Python's RewardModel.to_bytes
 * and from_bytes: the header from the model's settings, then the solver's payload; on reading,
 * the header's checks (StateFormat.checkWhole), the settings rebuilt and checked as a new model's,
 * then the payload's (finite, the solver's invalid()). Nothing is allocated from the header before
 * its sizes and the checksum agree.
 */
final class ModelBytes {
    private ModelBytes() {
    }

    static StateFormat.Header header(RewardModel m) {
        StateFormat.Header h = new StateFormat.Header();
        h.solverCode = m.solver.code();
        h.itemsize = m.f32 ? 4 : 8;
        h.dim = m.d;
        h.rank = m.rank;
        h.cgSteps = m.cgSteps;
        h.flags = (Double.isNaN(m.radius) ? 0 : StateFormat.FLAG_RADIUS)
                | (m.fingerprint == null ? 0 : StateFormat.FLAG_FINGERPRINT);
        h.t = m.t;
        h.lamWarmup = m.lamWarmup;
        h.budget = m.budget;
        h.eta = m.eta;
        h.lam = m.lam;
        h.radius = Double.isNaN(m.radius) ? 0.0 : m.radius;
        h.forget = m.forget;
        h.cgTol = m.cgTol;
        if (m.fingerprint != null) {
            h.fingerprint = m.fingerprint.clone();
        }
        h.payloadLen = StateFormat.specBytes(StateFormat.payloadSpec(h.solverCode, m.d, h.itemsize, m.rank));
        return h;
    }

    static byte[] encode(RewardModel m) {
        StateFormat.Header h = header(m);
        byte[] out = new byte[(int) h.totalBytes()];
        ByteBuffer b = ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN);
        StateFormat.encodeHeader(h, b);
        b.position(StateFormat.HEADER_BYTES);
        m.solver.writePayload(b);
        StateFormat.seal(out);
        return out;
    }

    static RewardModel decode(byte[] data) throws StateFormatException {
        if (data == null) {
            throw new InvalidInputException("fromBytes needs bytes, got null");
        }
        StateFormat.Header h = StateFormat.checkWhole(data);
        RewardModel.Config c = new RewardModel.Config(h.dim);
        c.solver = h.solver();
        c.dtype = h.itemsize == 4 ? "float32" : "float64";
        c.budgetBytes = h.budget == 0 ? OptionalLong.empty() : OptionalLong.of(h.budget);
        c.eta = h.eta;
        c.lam = h.lam;
        c.radius = h.hasRadius() ? OptionalDouble.of(h.radius) : OptionalDouble.empty();
        c.forget = h.forget;
        c.cgSteps = h.cgSteps;
        c.lamWarmup = h.lamWarmup;
        c.cgTol = h.cgTol;
        c.sketchRank = h.rank == 0 ? OptionalInt.empty() : OptionalInt.of(h.rank);
        c.headFingerprint = h.hasFingerprint() ? h.fingerprint : null;
        if (h.budget < 0) {
            throw new StateFormatException("state holds invalid settings: budget_bytes "
                    + Long.toUnsignedString(h.budget) + " is out of range");
        }
        RewardModel m;
        try {
            m = new RewardModel(c, false);
        } catch (ConfigException | InvalidInputException e) {
            throw new StateFormatException("state holds invalid settings: " + e.getMessage());
        }
        ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        b.position(StateFormat.HEADER_BYTES);
        m.solver.readPayload(b);
        if (!m.solver.finite()) {
            throw new StateFormatException("state holds non-finite values");
        }
        String problem = m.solver.invalid(h.t);
        if (problem != null) {
            throw new StateFormatException("inconsistent " + m.solver.name() + " state: " + problem);
        }
        m.solver.loaded();
        m.t = h.t;
        return m;
    }
}
