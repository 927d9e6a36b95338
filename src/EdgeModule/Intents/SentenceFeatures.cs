using System.Security.Cryptography;
using System.Text;
using EdgeSlm.EdgeModule.Model;

namespace EdgeSlm.EdgeModule.Intents;

/// <summary>
/// Sentence embeddings of one or more encoders, concatenated per sentence: the classifier's input features.
/// Not thread-safe: each instance owns its encoders' buffers.
/// </summary>
public sealed class SentenceFeatures : IDisposable
{
    private const int BatchSentences = 32;
    private readonly (BertModel Model, BertEncoder Encoder, WordPieceTokenizer Tokenizer)[] _encoders;

    public SentenceFeatures(IReadOnlyList<BertModel> models, int threads)
    {
        if (models.Count == 0)
        {
            throw new ArgumentException("at least one model is needed", nameof(models));
        }
        _encoders = models.Select(m => (m, new BertEncoder(m, threads), new WordPieceTokenizer(m.Vocabulary, m.Config.ContextLength))).ToArray();
        Dimension = models.Sum(m => m.Config.HiddenSize);
        Fingerprint = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(
            string.Join('\n', models.Select(m => $"{m.Name}|{Path.GetFileName(m.Path)}|{m.FileBytes}|{File.GetLastWriteTimeUtc(m.Path).Ticks}")))))[..16];
    }

    public int Dimension { get; }

    /// <summary>Threads each encoder uses now (the thermal governor lowers it); settable from any thread.</summary>
    public int ActiveThreads
    {
        get => _encoders[0].Encoder.ActiveThreads;
        set
        {
            foreach (var e in _encoders) e.Encoder.ActiveThreads = value;
        }
    }

    /// <summary>Identifies the models (name, file, size, time), to key what was trained on their features.</summary>
    public string Fingerprint { get; }

    public IReadOnlyList<BertModel> Models => _encoders.Select(e => e.Model).ToArray();

    /// <summary>Writes <paramref name="texts"/>.Count rows of <see cref="Dimension"/> features, in order.</summary>
    public void Embed(IReadOnlyList<string> texts, Span<float> features)
    {
        if (features.Length < texts.Count * Dimension)
        {
            throw new ArgumentException($"{texts.Count} sentences need {texts.Count * Dimension} features, not {features.Length}");
        }
        int offset = 0;
        foreach ((BertModel model, BertEncoder encoder, WordPieceTokenizer tokenizer) in _encoders)
        {
            int width = model.Config.HiddenSize;
            var block = new float[Math.Min(BatchSentences, texts.Count) * width];
            for (int start = 0; start < texts.Count; start += BatchSentences)
            {
                int count = Math.Min(BatchSentences, texts.Count - start);
                int[][] ids = new int[count][];
                for (int i = 0; i < count; i++)
                {
                    ids[i] = tokenizer.Encode(texts[start + i]);
                }
                encoder.Encode(ids.SelectMany(t => t).ToArray(), ids.Select(t => t.Length).ToArray(), block.AsSpan(0, count * width));
                for (int i = 0; i < count; i++)
                {
                    block.AsSpan(i * width, width).CopyTo(features.Slice((start + i) * Dimension + offset, width));
                }
            }
            offset += width;
        }
    }

    public void Dispose()
    {
        foreach (var e in _encoders)
        {
            e.Encoder.Dispose();
        }
    }
}
