using EdgeSlm.EdgeModule.Model;
using EdgeSlm.EdgeModule.Onnx;
using EdgeSlm.Kernels.Formats;

namespace EdgeSlm.EdgeModule.Conversion;

/// <summary>
/// Where the default model lives: with no model given, the bundled MiniLM is converted to q4_0 once into the
/// cache directory (<c>EDGESLM_CACHE</c>, else <c>$XDG_CACHE_HOME/edgeslm</c>, else <c>~/.cache/edgeslm</c>) and reused.
/// </summary>
public static class ModelCache
{
    public const string CacheVariable = "EDGESLM_CACHE";

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

    /// <summary>The model file to use: <paramref name="requested"/> if given, else the cached default (made if missing).</summary>
    public static string Resolve(string? requested, TextWriter? output)
    {
        if (!string.IsNullOrWhiteSpace(requested))
        {
            return File.Exists(requested) ? requested : throw new FileNotFoundException($"model file {requested} does not exist");
        }
        return DefaultModel(output);
    }

    public static string DefaultModel(TextWriter? output)
    {
        BundledModel bundled = BundledModel.MiniLM;
        string path = Path.Combine(Directory, $"{bundled.Name}-q4_0.gguf");
        if (File.Exists(path))
        {
            return path;
        }
        output?.WriteLine($"converting the bundled {bundled.DisplayName} to q4_0 into {path} (once)");
        System.IO.Directory.CreateDirectory(Directory);
        OnnxToGguf.ConvertTo(path, OnnxModel.Read(bundled.ReadOnnx()), bundled.ReadVocabulary(), bundled.DisplayName, bundled.Pooling, TensorTypes.For(QuantType.Q4_0));
        return path;
    }
}
