/// The toolkit's version: what `--version` prints and what converted files record as the
/// converter's version. The one place it is written.
public enum AISLFDVersion {
    public static let text = "0.1.0"
}
