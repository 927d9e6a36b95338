using EdgeSlm.EdgeModule.Model;
using EdgeSlm.EdgeModule.Onnx;
using EdgeSlm.Kernels.Formats;

namespace EdgeSlm.EdgeModule.Conversion;

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
            string[] parts = requested[BundledPrefix.Length..].Split(':');
            if (parts.Length > 2)
            {
                throw new ArgumentException($"'{requested}' is not a bundled model name: use bundled:NAME or bundled:NAME:TYPE");
            }
            QuantType type = parts.Length == 2 ? QuantTypeTraits.Parse(parts[1]).Type : QuantType.Q4_0;
            return Bundled(BundledModel.Find(parts[0]), type, output);
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
    public static string Bundled(BundledModel bundled, QuantType type, TextWriter? output)
    {
        string typeName = QuantTypeTraits.Of(type).Name;
        string path = Path.Combine(Directory, $"{bundled.Name}-{typeName}.gguf");
        if (File.Exists(path))
        {
            return path;
        }
        output?.WriteLine($"converting the bundled {bundled.DisplayName} to {typeName} into {path} (once)");
        System.IO.Directory.CreateDirectory(Directory);
        // Written under a temporary name and moved into place, so an interrupted conversion leaves no half file behind.
        string partial = path + $".{Environment.ProcessId}.partial";
        OnnxToGguf.ConvertTo(partial, OnnxModel.Read(bundled.ReadOnnx()), bundled.ReadVocabulary(), bundled.DisplayName, bundled.Pooling, TensorTypes.For(type));
        File.Move(partial, path, overwrite: true);
        return path;
    }
}
