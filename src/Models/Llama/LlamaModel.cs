using EdgeSlm.Models.Gguf;
using EdgeSlm.Models.Tokenizers;

namespace EdgeSlm.Models.Llama;

/// <summary>
/// A llama or qwen2 decoder loaded from a GGUF file: config and weights, the weights views into the
/// memory-mapped file (matrices of storage-only types converted into memory of their own), which stays open until
/// the model is disposed. Every hyperparameter and tensor is checked
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

    /// <summary>The file's tokenizer, checked against the embedding's rows; a failure names the file and the key.</summary>
    public DecoderTokenizer CreateTokenizer()
    {
        DecoderTokenizer tokenizer;
        try
        {
            tokenizer = DecoderTokenizer.FromGguf(_file);
        }
        catch (GgufFormatException e)
        {
            throw new GgufFormatException($"{Path}: {e.Message}");
        }
        if (tokenizer.VocabularySize != Config.VocabularySize)
        {
            throw new GgufFormatException($"{Path}: metadata '{DecoderTokenizer.TokensKey}' has {tokenizer.VocabularySize} tokens but tensor '{LlamaGguf.TokenEmbedding}' has {Config.VocabularySize} rows");
        }
        return tokenizer;
    }

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

    public void Dispose()
    {
        Weights.Dispose();
        _file.Dispose();
    }
}
