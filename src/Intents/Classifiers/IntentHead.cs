using System.Numerics.Tensors;
using EdgeSlm.Intents.Examples;

namespace EdgeSlm.Intents.Classifiers;

/// <summary>
/// The trained classifier of the intent engine: a <see cref="SoftmaxClassifier"/> on the encoders' sentence
/// features and, beside it, a <see cref="LexicalClassifier"/> on the utterance's words, combined as a weighted
/// product of experts: p(class) ∝ p_embedding(class) · p_words(class)^<see cref="LexicalWeight"/>. The weight is
/// chosen on held-out examples (0 turns the words off). Same classes, same order, in both.
/// </summary>
public sealed class IntentHead
{
    public IntentHead(SoftmaxClassifier embedding, LexicalClassifier? lexical, float lexicalWeight)
    {
        ArgumentNullException.ThrowIfNull(embedding);
        if (lexical is not null && !lexical.Classes.SequenceEqual(embedding.Classes, StringComparer.Ordinal))
        {
            throw new ArgumentException("the lexical and embedding classifiers must have the same classes in the same order");
        }
        if (!(lexicalWeight >= 0 && float.IsFinite(lexicalWeight)) || (lexical is null && lexicalWeight != 0))
        {
            throw new ArgumentException($"lexical weight {lexicalWeight} needs a lexical classifier and must be finite and not negative");
        }
        Embedding = embedding;
        Lexical = lexical;
        LexicalWeight = lexicalWeight;
    }

    public SoftmaxClassifier Embedding { get; }
    public LexicalClassifier? Lexical { get; }
    public float LexicalWeight { get; }
    public IReadOnlyList<string> Classes => Embedding.Classes;

    /// <summary>Class probabilities of one utterance, given its text and its sentence features.</summary>
    public void Predict(ReadOnlySpan<float> features, string text, Span<float> probabilities)
    {
        Embedding.Predict(features, probabilities);
        if (Lexical is null || LexicalWeight == 0)
        {
            return;
        }
        int k = Classes.Count;
        Span<float> scores = probabilities[..k];
        Span<float> words = k <= 256 ? stackalloc float[k] : new float[k];
        Lexical.LogProbabilities(text, words);
        Combine(scores, words, LexicalWeight, scores);
    }

    /// <summary>
    /// p(class) ∝ p_embedding(class) · p_words(class)^<paramref name="weight"/>, from the embedding classifier's
    /// probabilities and the words' log-probabilities (<paramref name="result"/> may be <paramref name="embedding"/>).
    /// </summary>
    internal static void Combine(ReadOnlySpan<float> embedding, ReadOnlySpan<float> words, float weight, Span<float> result)
    {
        if (weight == 0)
        {
            embedding.CopyTo(result);
            return;
        }
        for (int c = 0; c < embedding.Length; c++)
        {
            result[c] = MathF.Log(MathF.Max(embedding[c], 1e-30f)) + weight * words[c];
        }
        StableSoftMax.InPlace(result[..embedding.Length]);
    }

    /// <summary>The class, or "oos" when the classifier is not confident enough (or says out-of-scope itself).</summary>
    public string Decide(ReadOnlySpan<float> features, string text, Span<float> probabilities, double threshold)
    {
        Predict(features, text, probabilities);
        int best = TensorPrimitives.IndexOfMax(probabilities[..Classes.Count]);
        return probabilities[best] < threshold ? IntentExample.OutOfScope : Classes[best];
    }
}

/// <summary>
/// Softmax that cannot overflow: the largest logit is subtracted first (TensorPrimitives.SoftMax exponentiates
/// the logits as they are, and a logit above 88 gives infinity and then NaN probabilities).
/// </summary>
internal static class StableSoftMax
{
    public static void InPlace(Span<float> logits)
    {
        TensorPrimitives.Subtract(logits, TensorPrimitives.Max(logits), logits);
        TensorPrimitives.SoftMax(logits, logits);
    }
}

/// <summary>
/// A trained head on disk: <c>"EDGEINTH"</c>, version, the threshold, the lexical weight, the embedding
/// classifier's own checked format, then a byte saying whether a lexical classifier follows in its checked format.
/// Written to a temporary file and renamed, so a crash never leaves half a head behind.
/// </summary>
public static class HeadFile
{
    private static ReadOnlySpan<byte> Magic => "EDGEINTH"u8;
    private const int Version = 2;

    public static bool TryRead(string path, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IntentHead? head, out double threshold)
    {
        head = null;
        threshold = 0;
        try
        {
            using FileStream stream = File.OpenRead(path);
            using var reader = new BinaryReader(stream, System.Text.Encoding.UTF8, leaveOpen: true);
            if (!reader.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic) || reader.ReadInt32() != Version)
            {
                return false;
            }
            threshold = reader.ReadDouble();
            float lexicalWeight = reader.ReadSingle();
            if (!(threshold is >= 0 and <= 1) || !(lexicalWeight >= 0 && float.IsFinite(lexicalWeight)))
            {
                return false;
            }
            SoftmaxClassifier embedding = SoftmaxClassifier.Read(stream);
            LexicalClassifier? lexical = reader.ReadBoolean() ? LexicalClassifier.Read(stream) : null;
            head = new IntentHead(embedding, lexical, lexicalWeight);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or EndOfStreamException or ArgumentException)
        {
            // Missing or damaged: train again (and replace it).
            return false;
        }
    }

    public static bool TryWrite(string path, IntentHead head, double threshold)
    {
        string temporary = $"{path}.{Guid.NewGuid():N}.tmp"; // unique: two trainings of the same head may race
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            using (FileStream stream = File.Create(temporary))
            {
                using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
                {
                    writer.Write(Magic);
                    writer.Write(Version);
                    writer.Write(threshold);
                    writer.Write(head.LexicalWeight);
                }
                head.Embedding.Write(stream);
                stream.WriteByte(head.Lexical is null ? (byte)0 : (byte)1);
                head.Lexical?.Write(stream);
            }
            File.Move(temporary, path, overwrite: true);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(temporary); } catch (Exception d) when (d is IOException or UnauthorizedAccessException) { }
            return false;
        }
    }

}
