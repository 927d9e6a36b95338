using EdgeSlm.Models.Gguf;

namespace EdgeSlm.Models.Llama;

/// <summary>
/// A llama or qwen2 decoder loaded from a GGUF file: config and weights, the weights views into the
/// memory-mapped file, which stays open until the model is disposed. Every hyperparameter and tensor is checked
/// at load, so a bad file fails here with one line naming the key or tensor.
/// </summary>
public sealed class LlamaModel : IDisposable
{
    private readonly GgufFile _file;

    private LlamaModel(GgufFile file)
    {
        _file = file;
        Config = LlamaConfig.Read(file);
        Weights = LlamaWeights.Read(file, Config);
        Name = file.Get(LlamaGguf.NameKey)?.Value as string ?? System.IO.Path.GetFileNameWithoutExtension(file.Path);
    }

    public string Name { get; }
    public string Path => _file.Path;
    public long FileBytes => _file.Length;
    public LlamaConfig Config { get; }
    public LlamaWeights Weights { get; }

    /// <summary>The file's metadata (the tokenizer reads its vocabulary from it).</summary>
    public GgufFile File => _file;

    /// <exception cref="GgufFormatException">The file is not a usable decoder; the message names the key or tensor.</exception>
    public static LlamaModel Load(string path)
    {
        GgufFile file = GgufFile.Open(path);
        try
        {
            return new LlamaModel(file);
        }
        catch (GgufFormatException e)
        {
            file.Dispose();
            throw e.Message.StartsWith(path, StringComparison.Ordinal) ? e : new GgufFormatException($"{path}: {e.Message}");
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public void Dispose() => _file.Dispose();
}
