using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Models.Onnx;

namespace EdgeSlm.Testing;

/// <summary>The bundled models converted once per test run, into a temporary folder, in every type the tests compare.</summary>
public sealed class ConvertedModels : IDisposable
{
    private readonly string _directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "edgeslm-tests-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly Dictionary<string, string> _paths = new();
    private readonly Dictionary<string, OnnxModel> _onnx = new();
    private readonly Lock _lock = new();

    public ConvertedModels() => Directory.CreateDirectory(_directory);

    public string Path(BundledModel model, QuantType type, bool plain = false)
    {
        string key = $"{model.Name}-{QuantTypeTraits.Of(type).Name}{(plain ? "-plain" : "")}";
        lock (_lock)
        {
            if (_paths.TryGetValue(key, out string? existing))
            {
                return existing;
            }
            string path = System.IO.Path.Combine(_directory, key + ".gguf");
            TensorTypes types = plain ? TensorTypes.PlainQ4_0 : TensorTypes.For(type);
            OnnxToGguf.ConvertTo(path, Onnx(model), model.ReadVocabulary(), model.DisplayName, model.Pooling, types);
            _paths[key] = path;
            return path;
        }
    }

    public OnnxModel Onnx(BundledModel model)
    {
        lock (_lock)
        {
            if (!_onnx.TryGetValue(model.Name, out OnnxModel? onnx))
            {
                _onnx[model.Name] = onnx = OnnxModel.Read(model.ReadOnnx());
            }
            return onnx;
        }
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
