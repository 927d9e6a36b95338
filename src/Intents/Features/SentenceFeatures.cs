using System.Security.Cryptography;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Tokenizers;

namespace EdgeSlm.Intents.Features;

/// <summary>
/// The feature vector an intent head sees: for each model, in the order the models were given, its pooled,
/// L2-normalised sentence embedding followed by the same pooling of the hidden states after two earlier layers
/// (<see cref="PooledLayers"/>: half and two thirds of the depth, layers 3 and 4 of a 6-layer model), each
/// normalised alone ((sentences, Σ hidden × pools), row after row; model 0's block first). The earlier layers keep
/// more of the words than the last one, which the sentence-embedding training pulled towards paraphrase
/// similarity, and with them the classifier tells apart more of the intents that differ by a word
/// (docs/accuracy.md). They cost one pooling each, no encoder work. Sentences are embedded in batches of
/// <see cref="BatchSentences"/> through each encoder's packed batch API. Not thread-safe: one instance per
/// inference thread, like <see cref="BertEncoder"/>.
/// </summary>
public sealed class SentenceFeatures : IDisposable
{
    public const int BatchSentences = 32;

    private readonly BertEncoder[] _encoders;
    private readonly WordPieceTokenizer[] _tokenizers;
    private readonly int[] _offsets;  // (models) where each model's block starts in a feature row
    private readonly int[][] _layers; // (models) the layers pooled besides the last
    private float[] _block = [];      // (batch, hidden) one model's embeddings of one batch
    private float[] _layerBlock = []; // (batch, layers, hidden) the same model's earlier-layer pools

    /// <param name="models">The encoders, in feature order; they stay owned by the caller.</param>
    /// <param name="threads">Worker threads of each encoder's matrix multiplications.</param>
    /// <param name="maxTokens">
    /// Tokens read per sentence, [CLS] and [SEP] included; null: each model's context. Longer sentences are cut
    /// (and say so, see <see cref="Embed(IReadOnlyList{string}, Span{float}, Span{bool})"/>): the bound on time and
    /// memory per utterance.
    /// </param>
    /// <param name="earlierLayers">Also pool earlier layers (<see cref="PooledLayers"/>); false: the sentence embeddings alone.</param>
    public SentenceFeatures(IReadOnlyList<BertModel> models, int threads, int? maxTokens = null, bool earlierLayers = true)
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
        _layers = new int[models.Count][];
        _tokenizers = new WordPieceTokenizer[models.Count];
        _encoders = new BertEncoder[models.Count];
        try
        {
            for (int m = 0; m < models.Count; m++)
            {
                _offsets[m] = Dimension;
                _layers[m] = earlierLayers ? PooledLayers(models[m].Config.LayerCount) : [];
                Dimension += models[m].Config.HiddenSize * (1 + _layers[m].Length);
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
        Fingerprint = string.Join("+", models.Select((model, m) => ModelFingerprint(model) + (_layers[m].Length > 0 ? $":mean-of-layers:{string.Join(',', _layers[m])}" : "")))
            + (maxTokens is int cap && models.Any(m => cap < m.Config.ContextLength) ? $"+tokens:{cap}" : "");
    }

    /// <summary>The earlier layers pooled for a model of <paramref name="layerCount"/> layers: after half and two thirds of them.</summary>
    public static int[] PooledLayers(int layerCount) =>
        new[] { layerCount / 2, 2 * layerCount / 3 }.Where(l => l >= 1 && l < layerCount).Distinct().ToArray();

    /// <summary>Floats per sentence: each model's hidden size times its pools (the last layer and the earlier ones), added up.</summary>
    public int Dimension { get; }

    /// <summary>
    /// Names the models and their order, e.g. <c>minilm-q4_0.gguf:12345678:1f2e…+arctic-xs-q4_0.gguf:…</c>: each
    /// file's name, size and the SHA-256 of its GGUF header, metadata and tensor table (the bytes before the
    /// tensor data). A head trained on one set of features is only valid for the same fingerprint.
    /// </summary>
    public string Fingerprint { get; }

    public int ModelCount => _encoders.Length;

    /// <summary>Floats of the first model's sentence embedding, which opens every feature row.</summary>
    public int FirstBlockDimension => _encoders[0].Config.HiddenSize;

    /// <summary>Threads each encoder uses now (the thermal governor lowers it); settable from any thread.</summary>
    public int ActiveThreads
    {
        get => _encoders[0].ActiveThreads;
        set
        {
            foreach (BertEncoder encoder in _encoders) encoder.ActiveThreads = value;
        }
    }

    /// <summary>Each model's threads per pass by its token count, in model order (by default all threads for every pass).</summary>
    public IReadOnlyList<EncoderThreadPlan> ThreadPlans => _encoders.Select(e => e.ThreadPlan).ToArray();

    /// <summary>Times each model's encoder on this machine and keeps the plan <see cref="EncoderThreadPlan.Measure"/> chooses for it.</summary>
    public IReadOnlyList<EncoderThreadPlan> MeasureThreadPlans()
    {
        foreach (BertEncoder encoder in _encoders)
        {
            encoder.ThreadPlan = EncoderThreadPlan.Measure(encoder);
        }
        return ThreadPlans;
    }

    /// <summary>The same <paramref name="threads"/> (at most each encoder's) for every pass of every model.</summary>
    public void FixThreads(int threads)
    {
        foreach (BertEncoder encoder in _encoders)
        {
            encoder.ThreadPlan = EncoderThreadPlan.Fixed(Math.Clamp(threads, 1, encoder.Threads));
        }
    }

    /// <summary>Embeds <paramref name="texts"/> into <paramref name="features"/> (texts × <see cref="Dimension"/>).</summary>
    public void Embed(IReadOnlyList<string> texts, Span<float> features) => Embed(texts, features, []);

    /// <summary>
    /// Embeds <paramref name="texts"/> into <paramref name="features"/> (texts × <see cref="Dimension"/>) and, when
    /// <paramref name="truncated"/> is not empty (one per text), marks the texts that were cut to fit.
    /// </summary>
    public void Embed(IReadOnlyList<string> texts, Span<float> features, Span<bool> truncated) => Embed(texts, features, truncated, null);

    /// <summary>
    /// As <see cref="Embed(IReadOnlyList{string}, Span{float}, Span{bool})"/>, and when <paramref name="tokens"/> is
    /// given it receives the first model's last-layer state of every word piece and the pieces' ranges in their texts.
    /// </summary>
    public void Embed(IReadOnlyList<string> texts, Span<float> features, Span<bool> truncated, TokenStates? tokens)
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
        tokens?.Reset(_encoders[0].Config.HiddenSize, texts.Count);
        var lengths = new int[BatchSentences];
        for (int start = 0; start < texts.Count; start += BatchSentences)
        {
            int count = Math.Min(BatchSentences, texts.Count - start);
            for (int m = 0; m < _encoders.Length; m++)
            {
                int hidden = _encoders[m].Config.HiddenSize;
                var ids = new List<int>();
                for (int i = 0; i < count; i++)
                {
                    int[] encoded = _tokenizers[m].Encode(texts[start + i], out bool cut);
                    if (cut && truncated.Length != 0) truncated[start + i] = true;
                    ids.AddRange(encoded);
                    lengths[i] = encoded.Length;
                    if (m == 0 && tokens is not null)
                    {
                        int first = tokens.Add(encoded.Length);
                        _tokenizers[m].PieceRanges(texts[start + i], encoded, tokens.StartsFrom(first, encoded.Length), tokens.EndsFrom(first, encoded.Length));
                    }
                }
                int layers = _layers[m].Length;
                if (_block.Length < count * hidden)
                {
                    _block = new float[BatchSentences * hidden];
                }
                if (_layerBlock.Length < count * layers * hidden)
                {
                    _layerBlock = new float[BatchSentences * layers * hidden];
                }
                Span<float> block = _block.AsSpan(0, count * hidden);
                Span<float> layerBlock = _layerBlock.AsSpan(0, count * layers * hidden);
                Span<float> states = m == 0 && tokens is not null ? tokens.StatesFrom(tokens.SentenceStart(start), ids.Count) : [];
                _encoders[m].Encode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(ids), lengths.AsSpan(0, count), block, _layers[m], layerBlock, states);
                for (int i = 0; i < count; i++)
                {
                    Span<float> row = features.Slice((start + i) * Dimension + _offsets[m], hidden * (1 + layers));
                    block.Slice(i * hidden, hidden).CopyTo(row);
                    layerBlock.Slice(i * layers * hidden, layers * hidden).CopyTo(row[hidden..]);
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
