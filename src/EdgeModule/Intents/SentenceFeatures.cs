using System.Security.Cryptography;
using EdgeSlm.EdgeModule.Model;

namespace EdgeSlm.EdgeModule.Intents;

/// <summary>
/// The feature vector an intent head sees: each model's pooled, L2-normalised sentence embedding, side by side
/// in the order the models were given ((sentences, Σ hidden), row after row; model 0's block first). Sentences
/// are embedded in batches of <see cref="BatchSentences"/> through each encoder's packed batch API. Not
/// thread-safe: one instance per inference thread, like <see cref="BertEncoder"/>.
/// </summary>
public sealed class SentenceFeatures : IDisposable
{
    public const int BatchSentences = 32;

    private readonly BertEncoder[] _encoders;
    private readonly WordPieceTokenizer[] _tokenizers;
    private readonly int[] _offsets; // (models) where each model's block starts in a feature row
    private float[] _block = [];     // (batch, hidden) one model's embeddings of one batch

    /// <param name="models">The encoders, in feature order; they stay owned by the caller.</param>
    /// <param name="threads">Worker threads of each encoder's matrix multiplications.</param>
    /// <param name="maxTokens">
    /// Tokens read per sentence, [CLS] and [SEP] included; null: each model's context. Longer sentences are cut
    /// (and say so, see <see cref="Embed(IReadOnlyList{string}, Span{float}, Span{bool})"/>): the bound on time and
    /// memory per utterance.
    /// </param>
    public SentenceFeatures(IReadOnlyList<BertModel> models, int threads, int? maxTokens = null)
    {
        if (maxTokens is < 3)
        {
            throw new ArgumentOutOfRangeException(nameof(maxTokens), maxTokens, "at least 3 tokens: [CLS], one word piece, [SEP]");
        }
        if (models.Count == 0)
        {
            throw new ArgumentException("at least one model is needed", nameof(models));
        }
        _offsets = new int[models.Count];
        _tokenizers = new WordPieceTokenizer[models.Count];
        _encoders = new BertEncoder[models.Count];
        try
        {
            for (int m = 0; m < models.Count; m++)
            {
                _offsets[m] = Dimension;
                Dimension += models[m].Config.HiddenSize;
                _tokenizers[m] = new WordPieceTokenizer(models[m].Vocabulary, Math.Min(maxTokens ?? int.MaxValue, models[m].Config.ContextLength));
                _encoders[m] = new BertEncoder(models[m], threads);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
        // A cap below a model's context changes what long training sentences look like, so it is part of the key.
        Fingerprint = string.Join("+", models.Select(ModelFingerprint))
            + (maxTokens is int cap && models.Any(m => cap < m.Config.ContextLength) ? $"+tokens:{cap}" : "");
    }

    /// <summary>Floats per sentence: the models' hidden sizes added up.</summary>
    public int Dimension { get; }

    /// <summary>
    /// Names the models and their order, e.g. <c>minilm-q4_0.gguf:12345678:1f2e…+arctic-xs-q4_0.gguf:…</c>: each
    /// file's name, size and the SHA-256 of its GGUF header, metadata and tensor table (the bytes before the
    /// tensor data). A head trained on one set of features is only valid for the same fingerprint.
    /// </summary>
    public string Fingerprint { get; }

    public int ModelCount => _encoders.Length;

    /// <summary>Threads each encoder uses now (the thermal governor lowers it); settable from any thread.</summary>
    public int ActiveThreads
    {
        get => _encoders[0].ActiveThreads;
        set
        {
            foreach (BertEncoder encoder in _encoders) encoder.ActiveThreads = value;
        }
    }

    /// <summary>Embeds <paramref name="texts"/> into <paramref name="features"/> (texts × <see cref="Dimension"/>).</summary>
    public void Embed(IReadOnlyList<string> texts, Span<float> features) => Embed(texts, features, []);

    /// <summary>
    /// Embeds <paramref name="texts"/> into <paramref name="features"/> (texts × <see cref="Dimension"/>) and, when
    /// <paramref name="truncated"/> is not empty (one per text), marks the texts that were cut to fit.
    /// </summary>
    public void Embed(IReadOnlyList<string> texts, Span<float> features, Span<bool> truncated)
    {
        if (features.Length != texts.Count * Dimension)
        {
            throw new ArgumentException($"{texts.Count} sentences need {texts.Count * Dimension} floats of features, not {features.Length}", nameof(features));
        }
        if (truncated.Length != 0 && truncated.Length != texts.Count)
        {
            throw new ArgumentException($"{texts.Count} sentences need {texts.Count} truncation flags, not {truncated.Length}", nameof(truncated));
        }
        truncated.Clear();
        var lengths = new int[BatchSentences];
        for (int start = 0; start < texts.Count; start += BatchSentences)
        {
            int count = Math.Min(BatchSentences, texts.Count - start);
            for (int m = 0; m < _encoders.Length; m++)
            {
                int hidden = _encoders[m].Config.HiddenSize;
                var tokens = new List<int>();
                for (int i = 0; i < count; i++)
                {
                    int[] ids = _tokenizers[m].Encode(texts[start + i], out bool cut);
                    if (cut && truncated.Length != 0) truncated[start + i] = true;
                    tokens.AddRange(ids);
                    lengths[i] = ids.Length;
                }
                if (_block.Length < count * hidden)
                {
                    _block = new float[BatchSentences * hidden];
                }
                Span<float> block = _block.AsSpan(0, count * hidden);
                _encoders[m].Encode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(tokens), lengths.AsSpan(0, count), block);
                for (int i = 0; i < count; i++)
                {
                    block.Slice(i * hidden, hidden).CopyTo(features.Slice((start + i) * Dimension + _offsets[m], hidden));
                }
            }
        }
    }

    /// <summary>The features of one sentence.</summary>
    public void Embed(string text, Span<float> features) => Embed([text], features);

    public void Dispose()
    {
        foreach (BertEncoder? encoder in _encoders)
        {
            encoder?.Dispose();
        }
    }

    // From the loaded model's own bytes, not the file: the file may have been replaced since, or never written.
    private static string ModelFingerprint(BertModel model)
    {
        string hash = Convert.ToHexStringLower(SHA256.HashData(model.GgufHeader))[..16];
        return $"{Path.GetFileName(model.Path)}:{model.FileBytes}:{hash}";
    }
}
