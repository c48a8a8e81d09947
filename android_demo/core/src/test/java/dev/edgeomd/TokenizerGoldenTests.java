package dev.edgeomd;

import java.nio.file.Path;

final class TokenizerGoldenTests {
    private TokenizerGoldenTests() {
    }

    static void run(TestRunner T, Path golden) {
    }
}
