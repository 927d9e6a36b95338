using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Onnx;

namespace EdgeSlm.Models.Conversion;

/// <summary>
/// Where bundled models live once converted: each is converted to GGUF once into the cache directory
/// (<c>EDGESLM_CACHE</c>, else <c>$XDG_CACHE_HOME/edgeslm</c>, else <c>~/.cache/edgeslm</c>) and reused. With no
/// model given, the default is the bundled MiniLM in q4_0. A model is named by a file path or by
/// <c>bundled:NAME</c> (q4_0) or <c>bundled:NAME:TYPE</c>, e.g. <c>bundled:arctic-xs</c>, <c>bundled:minilm:f32</c>.
/// </summary>
public static class ModelCache
{
    public const string CacheVariable = "EDGESLM_CACHE";
    public const string BundledPrefix = "bundled:";

    public static string Directory
    {
        get
        {
            string? configured = Environment.GetEnvironmentVariable(CacheVariable);
            if (!string.IsNullOrWhiteSpace(configured)) return configured;
            string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            string root = !string.IsNullOrWhiteSpace(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(root, "edgeslm");
        }
    }

    /// <summary>The model file to use: <paramref name="requested"/> if given (a path or a bundled name), else the cached default (made if missing).</summary>
    public static string Resolve(string? requested, TextWriter? output)
    {
        if (string.IsNullOrWhiteSpace(requested))
        {
            return DefaultModel(output);
        }
        if (requested.StartsWith(BundledPrefix, StringComparison.OrdinalIgnoreCase))
        {
            (BundledModel bundled, QuantType type) = ParseBundled(requested);
            return Bundled(bundled, type, output);
        }
        return File.Exists(requested) ? requested : throw new FileNotFoundException($"model file {requested} does not exist");
    }

    /// <summary>Several models, comma-separated (<c>bundled:minilm,bundled:arctic-xs</c>), each resolved as by <see cref="Resolve"/>.</summary>
    public static IReadOnlyList<string> ResolveAll(string? requested, TextWriter? output)
    {
        if (string.IsNullOrWhiteSpace(requested))
        {
            return [DefaultModel(output)];
        }
        string[] names = requested.Split(',', StringSplitOptions.TrimEntries);
        if (names.Any(n => n.Length == 0))
        {
            throw new ArgumentException($"'{requested}' has an empty model name between its commas");
        }
        return names.Select(n => Resolve(n, output)).ToArray();
    }

    public static string DefaultModel(TextWriter? output) => Bundled(BundledModel.MiniLM, QuantType.Q4_0, output);

    /// <summary>The cached conversion of <paramref name="bundled"/> to <paramref name="type"/>, made if missing.</summary>
    public static string Bundled(BundledModel bundled, QuantType type, TextWriter? output) => Bundled(bundled, type, Directory, output);

    /// <summary>
    /// Raised whenever the converter makes a different file from the same bundled model, so that a device that
    /// converted with an earlier version converts again instead of keeping the old file (the revisions: docs/performance.md).
    /// </summary>
    public const int ConverterRevision = 2;

    private static string CachedPath(BundledModel bundled, QuantType type, string directory) =>
        Path.Combine(directory, $"{bundled.Name}-{QuantTypeTraits.Of(type).Name}.r{ConverterRevision}.gguf");

    private static string Bundled(BundledModel bundled, QuantType type, string directory, TextWriter? output)
    {
        string path = CachedPath(bundled, type, directory);
        if (File.Exists(path))
        {
            return path;
        }
        output?.WriteLine($"converting the bundled {bundled.DisplayName} to {QuantTypeTraits.Of(type).Name} into {path} (once)");
        System.IO.Directory.CreateDirectory(directory);
        // Written under a temporary name and moved into place, so an interrupted conversion leaves no half file behind.
        string partial = path + $".{Environment.ProcessId}.partial";
        try
        {
            OnnxToGguf.ConvertTo(partial, OnnxModel.Read(bundled.ReadOnnx()), bundled.ReadVocabulary(), bundled.DisplayName, bundled.Pooling, TensorTypes.For(type));
            File.Move(partial, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A full disk leaves a partial file behind: remove it (which may fail too, on a read-only file system).
            try { File.Delete(partial); } catch (Exception d) when (d is IOException or UnauthorizedAccessException) { }
            throw;
        }
        return path;
    }

    /// <summary>
    /// The module's model, read into private memory (see <see cref="BertModel.LoadIntoMemory"/>): the file
    /// <paramref name="requested"/> names, or a bundled model from <paramref name="cacheDirectory"/>, converted into
    /// it first if missing. When the cache cannot be written (read-only, full, not a directory) the bundled model is
    /// converted in memory instead, at every start, and <paramref name="warning"/> says so.
    /// </summary>
    public static BertModel LoadForModule(string? requested, string cacheDirectory, out string? warning)
    {
        warning = null;
        (BundledModel Model, QuantType Type)? bundled = string.IsNullOrWhiteSpace(requested) ? (BundledModel.MiniLM, QuantType.Q4_0)
            : requested.StartsWith(BundledPrefix, StringComparison.OrdinalIgnoreCase) ? ParseBundled(requested) : null;
        if (bundled is not { } b)
        {
            return BertModel.LoadIntoMemory(Resolve(requested, null));
        }
        string path;
        try
        {
            path = Bundled(b.Model, b.Type, cacheDirectory, null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            path = CachedPath(b.Model, b.Type, cacheDirectory);
            warning = $"cannot write the converted model to {path} ({e.Message}); converted in memory instead, again at every start";
            byte[] image = OnnxToGguf.ConvertInMemory(OnnxModel.Read(b.Model.ReadOnnx()), b.Model.ReadVocabulary(), b.Model.DisplayName, b.Model.Pooling, TensorTypes.For(b.Type), path);
            return BertModel.FromGguf(image, path);
        }
        return BertModel.LoadIntoMemory(path);
    }

    /// <summary><c>bundled:NAME</c> or <c>bundled:NAME:TYPE</c>: the bundled model and the type it is converted to (q4_0 unless named).</summary>
    public static (BundledModel Model, QuantType Type) ParseBundled(string requested)
    {
        string[] parts = requested[BundledPrefix.Length..].Split(':');
        if (parts.Length > 2)
        {
            throw new ArgumentException($"'{requested}' is not a bundled model name: use bundled:NAME or bundled:NAME:TYPE");
        }
        QuantTypeTraits type = parts.Length == 2 ? QuantTypeTraits.Parse(parts[1]) : QuantTypeTraits.Of(QuantType.Q4_0);
        if (!type.IsNative)
        {
            throw new ArgumentException($"'{requested}': the bundled models convert to f32, f16, q8_0 or q4_0, not {type.Name}");
        }
        return (BundledModel.Find(parts[0]), type.Type);
    }
}
