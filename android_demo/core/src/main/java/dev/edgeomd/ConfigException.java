package dev.edgeomd;

/** A constructor setting, or a combination of them, is not supported (also: budget too small). */
public class ConfigException extends IllegalArgumentException {
    public ConfigException(String message) {
        super(message);
    }
}
