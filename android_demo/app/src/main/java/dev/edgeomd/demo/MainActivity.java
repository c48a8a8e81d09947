package dev.edgeomd.demo;

import android.app.Activity;
import android.os.Bundle;
import android.widget.Button;
import android.widget.TextView;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import dev.edgeomd.Json;
import dev.edgeomd.RewardModel;
import dev.edgeomd.Strategies;
import dev.edgeomd.UserStore;

/**
 * Two candidate answers to a prompt; the user picks the better one (or thumbs answer A up or
 * down); the reward model learns on the phone and is persisted in app storage after every
 * feedback (checkpoint + journal, dev.edgeomd.UserStore). Which two answers are shown is the
 * paper's deployment rule (Strategies "ucb": the best by reward, and the one with the highest
 * optimistic reward relative to it). Prompts and answers come from the SDK's demo corpus.
 *
 * All model and ONNX work runs on one background thread; the UI thread only shows results.
 */
public final class MainActivity extends Activity {
    /** The store's user id: one user per phone; the folder opens in Python's FolderStore as is. */
    static final String USER = "me";
    private final ExecutorService worker = Executors.newSingleThreadExecutor();
    private final Random rng = new Random();
    private TextView status, promptView, answerA, answerB;

    // touched only on the worker thread
    private OnnxFeatureHead head;
    private UserStore store;
    private List<Map<String, Object>> prompts;
    private int promptIndex = -1;
    private double[][] phi;
    private int shownA = -1, shownB = -1;

    @Override
    protected void onCreate(Bundle saved) {
        super.onCreate(saved);
        setContentView(R.layout.activity_main);
        status = findViewById(R.id.status);
        promptView = findViewById(R.id.prompt);
        answerA = findViewById(R.id.answer_a);
        answerB = findViewById(R.id.answer_b);
        ((Button) findViewById(R.id.pick_a)).setOnClickListener(v -> feedback(true, false, false));
        ((Button) findViewById(R.id.pick_b)).setOnClickListener(v -> feedback(false, true, false));
        ((Button) findViewById(R.id.thumb_up)).setOnClickListener(v -> feedback(false, false, true));
        ((Button) findViewById(R.id.thumb_down)).setOnClickListener(v -> thumbDown());
        ((Button) findViewById(R.id.next)).setOnClickListener(v -> worker.execute(this::showNext));
        ((Button) findViewById(R.id.reset)).setOnClickListener(v -> worker.execute(this::reset));
        worker.execute(this::load);
    }

    /** adb push target: /sdcard/Android/data/dev.edgeomd.demo/files/head (see README.md). */
    private Path headFolder() {
        File ext = getExternalFilesDir(null);
        File f = ext != null ? new File(ext, "head") : new File(getFilesDir(), "head");
        return f.toPath();
    }

    private void load() {
        try {
            prompts = readCorpus();
            head = new OnnxFeatureHead(headFolder());
            // the head's features: the graph's d plus its views (style block, wording view) when it has them
            RewardModel.Config cfg = new RewardModel.Config(head.manifest.featureDim());
            cfg.budgetBytes = java.util.OptionalLong.of(1 << 20);  // exact up to d ~ 500 in float32, a sketch above
            cfg.headFingerprint = head.manifest.fingerprint;
            Path userDir = new File(getFilesDir(), "user").toPath();
            store = UserStore.open(userDir, USER, cfg, 20);
            boolean usable;
            try {
                store.model().bindHead(head.manifest.fingerprint);
                // a state of the graph's d alone (kept before the app appended the head's style
                // block) cannot score featureDim() features
                usable = store.model().dim() == head.manifest.featureDim();
            } catch (IllegalStateException other) {
                usable = false;  // learned on another head
            }
            if (!usable) {
                // keep that state aside (never delete it), start fresh
                store.close();
                Path aside = new File(getFilesDir(), "user-previous-head-" + System.currentTimeMillis()).toPath();
                Files.move(userDir, aside);
                store = UserStore.open(userDir, USER, cfg, 20);
            }
            say("head d=" + head.manifest.featureDim() + " on " + head.provider + "; " + store.model());
            showNext();
        } catch (Exception e) {
            say("Cannot start: " + e.getMessage() + "\nPush an exported head to " + headFolder()
                    + " (README.md: adb push).");
        }
    }

    private List<Map<String, Object>> readCorpus() throws Exception {
        try (InputStream in = getAssets().open("demo_corpus.json")) {
            ByteArrayOutputStream buf = new ByteArrayOutputStream();
            byte[] b = new byte[8192];
            for (int n; (n = in.read(b)) > 0; ) {
                buf.write(b, 0, n);
            }
            Map<String, Object> corpus = Json.obj(Json.parse(new String(buf.toByteArray(), StandardCharsets.UTF_8)));
            List<Map<String, Object>> out = new ArrayList<>();
            for (Object p : Json.arr(corpus.get("prompts"))) {
                out.add(Json.obj(p));
            }
            return out;
        }
    }

    private void showNext() {
        if (head == null || prompts == null || prompts.isEmpty()) {
            return;
        }
        try {
            promptIndex = (promptIndex + 1) % prompts.size();
            Map<String, Object> p = prompts.get(promptIndex);
            List<String> answers = new ArrayList<>();
            for (Object r : Json.arr(p.get("responses"))) {
                answers.add((String) Json.obj(r).get("text"));
            }
            String prompt = (String) p.get("prompt");
            phi = head.features(prompt, answers);
            int[] pair = Strategies.choosePair(store.model(), phi, "ucb", Strategies.DEFAULT_BETA,
                    Strategies.DEFAULT_Q, rng);
            shownA = pair[0];
            shownB = pair[1];
            double[] r = store.model().reward(phi);
            runOnUiThread(() -> {
                promptView.setText(prompt);
                answerA.setText("A: " + answers.get(shownA));
                answerB.setText("B: " + answers.get(shownB));
            });
            say(store.model() + String.format(" | r(A)=%.3f r(B)=%.3f", r[shownA], r[shownB]));
        } catch (Exception e) {
            say("Error: " + e);
        }
    }

    private void feedback(boolean aWins, boolean bWins, boolean thumbUpA) {
        worker.execute(() -> {
            if (phi == null) {
                return;
            }
            try {
                if (aWins) {
                    store.learnPair(phi[shownA], phi[shownB], 1.0);
                } else if (bWins) {
                    store.learnPair(phi[shownB], phi[shownA], 1.0);
                } else if (thumbUpA) {  // A against B, which was on screen with it (as the SDK)
                    store.learnOne(RewardModel.thumbObservation(phi[shownA], new double[][] {phi[shownB]}),
                            1.0, 1.0);
                }
                showNext();
            } catch (Exception e) {
                say("Not learned (nothing changed): " + e.getMessage());
            }
        });
    }

    private void thumbDown() {
        worker.execute(() -> {
            if (phi == null) {
                return;
            }
            try {
                store.learnOne(RewardModel.thumbObservation(phi[shownA], new double[][] {phi[shownB]}),
                        0.0, 1.0);
                showNext();
            } catch (Exception e) {
                say("Not learned (nothing changed): " + e.getMessage());
            }
        });
    }

    private void reset() {
        try {
            if (store != null) {
                store.reset();
                say("Forgot everything: " + store.model());
            }
        } catch (Exception e) {
            say("Error: " + e);
        }
    }

    private void say(String text) {
        runOnUiThread(() -> status.setText(text));
    }

    @Override
    protected void onDestroy() {
        worker.execute(() -> {
            try {
                if (store != null) {
                    store.checkpoint();
                    store.close();
                }
                if (head != null) {
                    head.close();
                }
            } catch (Exception ignored) {
                // the journal already holds every feedback: nothing is lost
            }
        });
        worker.shutdown();
        super.onDestroy();
    }
}
