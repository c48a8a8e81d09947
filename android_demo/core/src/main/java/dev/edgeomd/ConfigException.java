package dev.edgeomd;

/** A constructor setting, or a combination of them, is not supported (also: budget too small). */
public class ConfigException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public ConfigException(String message) {
        super(message);
    }
}
