package dev.edgeomd;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;

/**
 * The Java reader's payload layout against Python's solver specs: java dev.edgeomd.StateLayoutCheck
 * LAYOUT_JSON (tests/runtime/golden/state_layout.json, written by
 * edge_omd.solvers.base.layout_golden). For every solver code and size there, {@link
 * StateFormat#payloadSpec} must give the same arrays (element count, itemsize, int or float) in
 * the same order, and {@link StateFormat#SOLVER_NAMES} the same name; every code Java knows must
 * be in the file. Prints "layout OK (N cases)" and exits 0, or lists the differences and exits 1.
 */
public final class StateLayoutCheck {
    private StateLayoutCheck() {
    }

    public static void main(String[] args) throws Exception {
        Map<String, Object> root = Json.obj(Json.parse(new String(Files.readAllBytes(Paths.get(args[0])),
                StandardCharsets.UTF_8)));
        StringBuilder bad = new StringBuilder();
        int cases = 0;
        boolean[] seen = new boolean[StateFormat.SOLVER_NAMES.length];
        for (Object so : Json.arr(root.get("solvers"))) {
            Map<String, Object> s = Json.obj(so);
            int code = (int) Json.integer(s.get("code"));
            String name = (String) s.get("name");
            if (code < 1 || code >= StateFormat.SOLVER_NAMES.length) {
                bad.append("solver code ").append(code).append(" (").append(name).append(") unknown to Java\n");
                continue;
            }
            seen[code] = true;
            if (!name.equals(StateFormat.SOLVER_NAMES[code])) {
                bad.append("code ").append(code).append(": Python ").append(name).append(", Java ")
                        .append(StateFormat.SOLVER_NAMES[code]).append('\n');
            }
            for (Object co : Json.arr(s.get("cases"))) {
                Map<String, Object> c = Json.obj(co);
                long d = Json.integer(c.get("d"));
                long rank = Json.integer(c.get("rank"));
                int itemsize = (int) Json.integer(c.get("itemsize"));
                List<Object> want = Json.arr(c.get("arrays"));
                StateFormat.ArraySpec[] got = StateFormat.payloadSpec(code, d, itemsize, rank);
                String where = name + " d=" + d + " rank=" + rank + " itemsize=" + itemsize;
                cases++;
                if (got.length != want.size()) {
                    bad.append(where).append(": ").append(got.length).append(" arrays, Python ")
                            .append(want.size()).append('\n');
                    continue;
                }
                for (int i = 0; i < got.length; i++) {
                    List<Object> w = Json.arr(want.get(i));
                    long count = Json.integer(w.get(0));
                    int size = (int) Json.integer(w.get(1));
                    boolean isInt = Boolean.TRUE.equals(w.get(2));
                    if (got[i].count != count || got[i].itemsize != size || got[i].isInt != isInt) {
                        bad.append(where).append(": array ").append(i).append(" is (").append(got[i].count)
                                .append(", ").append(got[i].itemsize).append(got[i].isInt ? " int" : " float")
                                .append("), Python (").append(count).append(", ").append(size)
                                .append(isInt ? " int" : " float").append(")\n");
                    }
                }
                if (StateFormat.specBytes(got) != Json.integer(c.get("bytes"))) {
                    bad.append(where).append(": payload ").append(StateFormat.specBytes(got))
                            .append(" bytes, Python ").append(Json.integer(c.get("bytes"))).append('\n');
                }
            }
        }
        for (int code = 1; code < seen.length; code++) {
            if (!seen[code]) {
                bad.append("Java solver code ").append(code).append(" is not in Python's specs\n");
            }
        }
        if (bad.length() > 0) {
            System.out.print(bad);
            System.exit(1);
        }
        System.out.println("layout OK (" + cases + " cases)");
    }
}
